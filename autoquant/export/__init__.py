"""Export: a plan applied to a model, written as a checkpoint a serving engine loads.

    export_plan(plan, out_dir, engine="vllm")     the one entry point (CLI, `search --export`, app)
      checks.py         what the engine could not load -> UserError naming layer and reason
      ct_checkpoint.py  compressed-tensors `pack-quantized` (vLLM, transformers), streamed
      ct_format.py      autoquant's codes/scales/zeros <-> compressed-tensors' tensors and config
      streaming.py      lazy source reader, sharded safetensors writer + index
      native.py         autoquant's own format (`--format autoquant`)
      model_card.py     the README.md beside the weights
    load_quantized(dir, device)                   either format, into QuantLinear (Triton on CUDA)

A compressed-tensors directory holds sharded safetensors + index, config.json with
`quantization_config`, tokenizer, generation config, `autoquant_plan.json` and README.md.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import replace
from pathlib import Path

import torch

from autoquant.data import TextSource
from autoquant.engines import DEFAULT_ENGINE, Engine, get_engine
from autoquant.errors import UserError
from autoquant.export.native import PLAN_FILE, export_checkpoint
from autoquant.plan import Plan, calibration_source

FORMATS = ("compressed-tensors", "autoquant", "gguf")
DEFAULT_MAX_SHARD_SIZE = "5GB"

__all__ = ["FORMATS", "export_plan", "export_checkpoint", "load_quantized"]


def _source_for(plan: Plan, model: str | None):
    from autoquant.models import DEFAULT_MODEL_NAME, resolve_model

    spec = model if model is not None else plan.metadata.get("model_spec", plan.model)
    return resolve_model(None if spec in ("", None, DEFAULT_MODEL_NAME) else spec)


def export_plan(plan: Plan, out_dir: str | Path, *, engine: str | Engine = DEFAULT_ENGINE,
                fmt: str | None = None, model: str | None = None, max_shard_size: str | int = DEFAULT_MAX_SHARD_SIZE,
                dtype: torch.dtype = torch.float16, progress: bool = False, command: str | None = None,
                calib: TextSource | None = None) -> Path:
    """Quantize the plan's model (or `model`) under `plan` and write a checkpoint `engine` loads.

    `fmt` defaults to the engine's format (compressed-tensors for vllm and transformers).
    gptq/awq layers are calibrated on `calib`, else on the text the plan records (`calibration_source`).
    Everything a user can get wrong raises UserError before any weight is read.
    """
    from autoquant.export.checks import check_exportable
    from autoquant.export.model_card import model_card
    from autoquant.export.streaming import SourceTensors, parse_shard_size, source_directory
    from autoquant.layers import discover_layers
    from autoquant.models import build_meta_model, load_config, load_tokenizer

    eng = get_engine(engine)
    fmt = fmt or eng.export_format
    if fmt not in FORMATS:
        raise UserError(f"unknown export format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if eng.export_format != fmt and eng.name != "autoquant":
        raise UserError(f"engine {eng.name} loads {eng.export_format} checkpoints, not {fmt}")
    if fmt == "gguf" and plan.calibrated:
        raise UserError("a GGUF file holds llama.cpp's own block quantization: export gptq/awq plans as "
                        "compressed-tensors or --format autoquant")
    if fmt == "gguf":  # one file for llama.cpp, written by the gguf package (export_gguf checks the plan)
        from autoquant.export.gguf_file import export_gguf

        return export_gguf(_source_for(plan, model), plan, out_dir, progress=progress)
    shard_bytes = parse_shard_size(max_shard_size)
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise UserError(f"export directory {out} is not empty; choose a new --out")
    source = _source_for(plan, model)
    meta_model = build_meta_model(load_config(source))
    layers = discover_layers(meta_model)
    check_exportable(plan, layers, eng, fmt, meta_model)
    if plan.calibrated:  # the text found (or refused) before any weight is read
        calib = calib or calibration_source(plan)[0]
        plan = replace(plan, calibration=calib.ref)
    if fmt == "autoquant":
        return export_checkpoint(source, plan, out, dtype=dtype, calib=calib)
    if not source.has_weights:
        raise UserError(f"{source.display} holds only a config (no weights): nothing to export")

    from autoquant.export.ct_checkpoint import write_ct_checkpoint, write_ct_config
    from autoquant.progress import Progress

    n = len(meta_model.state_dict())
    with Progress(progress) as ui:
        tensors, quantized = _calibrated(source, plan, ui, calib) if plan.calibrated else (
            SourceTensors(source_directory(source)), None)
        out.mkdir(parents=True, exist_ok=True)
        bar = ui.phase(f"exporting {source.display} ({fmt})", n)
        write_ct_checkpoint(tensors, meta_model, plan, out, dtype, shard_bytes, on_tensor=lambda: ui.advance(bar),
                            quantized=quantized)
    write_ct_config(meta_model, plan, out, dtype)
    _write_generation_config(meta_model, out)
    try:
        load_tokenizer(source).save_pretrained(out)
    except UserError:
        pass  # a model directory without a tokenizer exports without one
    meta = dict(plan.metadata, engine=eng.name, export_format=fmt, export_dtype=str(dtype).removeprefix("torch."))
    replace(plan, model=plan.model or source.display, metadata=meta).save(out / PLAN_FILE)
    (out / "README.md").write_text(model_card(
        plan, model=source.display, engine=eng.name, fmt=fmt, bits_per_weight=plan.bits_per_weight(layers),
        path=str(out), command=command or shlex.join(["autoquant", *sys.argv[1:]])))
    return out


def _calibrated(source, plan: Plan, ui, calib: TextSource):
    """gptq/awq: the whole float model loaded and quantized block by block on calibration text
    (not streamed: GPTQ's sequential calibration runs the model); its tensors and chosen codes."""
    from autoquant.export.streaming import ModelTensors
    from autoquant.models import load_model, load_tokenizer
    from autoquant.quantizers.calibrate import calibration_windows, quantize_model

    model = load_model(source, dtype=torch.float32)
    bar = ui.phase(f"calibrating {source.display} (gptq/awq)", len(plan.formats))
    quantized = quantize_model(model, plan.formats, plan.quantizers, calibration_windows(load_tokenizer(source), calib),
                               on_layer=lambda _: ui.advance(bar))
    return ModelTensors(model.state_dict()), quantized


def _write_generation_config(meta_model, out: Path) -> None:
    from transformers import GenerationConfig

    try:
        GenerationConfig.from_model_config(meta_model.config).save_pretrained(out)
    except (ValueError, OSError):
        pass  # a config whose generation defaults transformers rejects: the engine's defaults apply


def load_quantized(path: str | Path, device: str | torch.device = "cpu") -> torch.nn.Module:
    """A checkpoint written by `export_plan` (compressed-tensors or autoquant's format) as a model
    whose quantized layers are QuantLinear: Triton kernels on CUDA, the reference path elsewhere."""
    from autoquant.export.ct_checkpoint import load_ct_checkpoint, read_quantization_config
    from autoquant.export.native import load_native

    path = Path(path)
    qconfig = read_quantization_config(path) if (path / "config.json").is_file() else None
    if qconfig is not None:
        return load_ct_checkpoint(path, qconfig, device)
    if (path / PLAN_FILE).is_file() and Plan.load(path / PLAN_FILE).metadata.get("export_format") == "compressed-tensors":
        return _load_unquantized(path, device)  # a 16-bit plan: a plain checkpoint, no quantization_config
    return load_native(path, device)


def _load_unquantized(path: Path, device: str | torch.device) -> torch.nn.Module:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path).to(device).eval()
