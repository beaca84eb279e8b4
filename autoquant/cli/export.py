"""`autoquant export`: a plan applied for real, written as a checkpoint a serving engine loads."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from autoquant.costs import format_bytes
from autoquant.cli._common import CalibOpt, EngineOpt, ModelOpt, QuantizerOpt, console, err_console
from autoquant.engines import default_engine
from autoquant.errors import UserError
from autoquant.export import DEFAULT_MAX_SHARD_SIZE, FORMATS, export_plan
from autoquant.memory import ModelShape
from autoquant.models import resolve_model
from autoquant.plan import Plan, calibration_source, resolve_plan


def register(app: typer.Typer) -> None:
    app.command("export")(export)


def export(
    plan: Annotated[str, typer.Option("--plan", "-p", help="Plan file (e.g. runs/.../plan.json) or a uniform format.")],
    out: Annotated[str, typer.Option("--out", "-o", help="New directory for the checkpoint.")],
    model: ModelOpt = None,
    engine: EngineOpt = None,
    fmt: Annotated[Optional[str], typer.Option("--format", help=f"Checkpoint format: {', '.join(FORMATS)}. Default: the engine's (compressed-tensors for vllm and transformers).")] = None,
    max_shard_size: Annotated[str, typer.Option("--max-shard-size", help="Largest safetensors shard, e.g. 5GB.")] = DEFAULT_MAX_SHARD_SIZE,
    bf16: Annotated[bool, typer.Option("--bf16", help="Keep unquantized tensors in bf16 instead of fp16.")] = False,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="No progress bar.")] = False,
    quantizer: QuantizerOpt = None,
    calib: CalibOpt = None,
) -> None:
    """Quantize MODEL under PLAN and write a checkpoint ENGINE loads: sharded safetensors + index,
    config (with compressed-tensors' quantization_config), tokenizer, generation config, the plan, a README.

    Streams layer by layer (never the whole float model in memory). A plan the engine cannot load
    (fused q/k/v or gate/up in different formats, a format it does not serve) exits 2 naming the layer.
    Load it with vLLM / transformers, or `autoquant.export.load_quantized(DIR, device="cuda")`.
    Exit codes: 0 ok, 2 bad input or a plan the engine cannot load.
    """
    import torch

    engine = engine or default_engine(fmt=fmt)
    the_plan = _plan(plan, model, quantizer)
    calib_text = None
    if calib is not None:
        calib_text, note = calibration_source(the_plan, calib)
        if not the_plan.calibrated:
            note = "--calib is not used: the plan has no gptq/awq layers, nothing is calibrated"
        if note:
            err_console.print(f"note: {note}")
    try:
        path = export_plan(the_plan, out, engine=engine, fmt=fmt, model=model, max_shard_size=max_shard_size,
                           dtype=torch.bfloat16 if bf16 else torch.float16, progress=not no_progress,
                           calib=calib_text)
    except UserError as e:
        raise e.with_flags({"out_dir": "--out"}) from None
    if path.is_file():  # a GGUF export is one file
        _print_gguf(path)
        return
    size = sum(f.stat().st_size for f in path.iterdir() if f.is_file())
    console.print(f"wrote {path} ({format_bytes(size)}) for {engine}")


def _plan(spec: str, model: str | None, quantizer: str | None) -> Plan:
    if model is None and spec.endswith(".json"):
        if quantizer not in (None, "rtn"):
            raise UserError("--quantizer applies to a uniform plan; a plan file names each layer's quantizer")
        return Plan.load(spec)  # names its own model; export_plan validates it against that model
    source = resolve_model(model)
    return resolve_plan(spec, list(ModelShape.from_source(source).layers), source.spec, quantizer)


def _print_gguf(path) -> None:
    from autoquant.export.gguf_file import tensor_types

    kinds = ", ".join(f"{t} x{n}" for t, n in tensor_types(path).most_common())
    console.print(f"wrote {path} ({format_bytes(path.stat().st_size)}; tensors: {kinds})")
