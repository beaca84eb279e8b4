"""Export for llama.cpp: a plan written as one GGUF file, each tensor in its planned type.

    linear layers      the plan's format: a llama.cpp block type (q8_0, q4_0, ...) quantized by
                       the gguf package (autoquant.gguf_formats, the bytes the search measured),
                       or F16 / BF16 for fp16 / bf16
    token embedding    F16 (the memory model keeps embeddings 16-bit); a tied output tensor is
                       this same tensor (no `output.weight`, as llama.cpp's converter writes tied
                       models): in 16 bits, or in the tied lm_head's block format when the plan
                       quantizes it (then the lookup reads the quantized rows, as measured)
    norms              F32, as llama.cpp's converter writes every 1-D tensor
    metadata           copied from the source GGUF (hyper-parameters, tokenizer, chat template),
                       so llama.cpp and transformers read the file as they read the source

Tensor names are llama.cpp's (`blk.N.attn_q.weight`, via gguf's TensorNameMap); Llama's q and k
rows are permuted as llama.cpp's converter does (llama.cpp rotates interleaved pairs, transformers
halves; transformers un-permutes on load). The permutation moves whole rows, and blocks lie along
rows, so the stored bytes are exactly the permuted bytes of the measured quantization.

The file is written by the gguf package's GGUFWriter. Plans with formats GGUF cannot hold are
refused before any work (UserError naming the layer).
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from autoquant import gguf_formats
from autoquant.errors import UserError
from autoquant.formats import QuantFormat
from autoquant.layers import discover_layers
from autoquant.models import ModelSource, build_meta_model, load_config, load_model
from autoquant.plan import Plan
from autoquant.progress import Progress

# Architectures whose tensors and metadata this exporter has been checked on, and whether
# llama.cpp's converter permutes their q/k rows.
_ARCHITECTURES = {"llama": True}
# Keys the writer sets itself, or that describe the source file rather than this one.
_SKIPPED_KEYS = ("GGUF.", "general.architecture", "general.file_type")
_PLAN_KEY = "autoquant.plan"  # the plan's per-layer summary, for whoever inspects the file


def check_gguf_plan(plan: Plan, in_features: dict[str, int]) -> None:
    """UserError (exit 2) naming the first layer whose format a GGUF file cannot hold."""
    for name, fmt in plan.formats.items():
        if fmt.is_float:
            continue
        if not fmt.is_gguf:
            raise UserError(
                f"layer {name}: {fmt} has no GGUF form; a GGUF plan uses fp16, bf16 or llama.cpp block "
                f"formats ({', '.join(gguf_formats.usable_types())}): search with --space llamacpp"
            )
        if not fmt.fits(in_features[name]):
            raise UserError(f"layer {name}: {fmt} needs rows of whole {fmt.effective_group(0)}-weight blocks; "
                            f"this layer's rows have {in_features[name]} weights")


def _ggml_float(fmt: QuantFormat):
    from gguf import GGMLQuantizationType

    return GGMLQuantizationType.BF16 if fmt.dtype == "bf16" else GGMLQuantizationType.F16


def _encode(w: torch.Tensor, fmt: QuantFormat) -> tuple[np.ndarray, object | None]:
    """A 2-D weight as GGUF data: (array, raw ggml type or None when numpy's dtype says it)."""
    from gguf import quants

    if fmt.is_gguf:
        return gguf_formats.quantize(w, fmt.dtype), gguf_formats.ggml_type(fmt.dtype)
    if fmt.dtype == "bf16":
        return quants.quantize(w.float().numpy(), _ggml_float(fmt)), _ggml_float(fmt)
    return w.to(torch.float16).numpy(), None


def _embedding_name(model: torch.nn.Module) -> str:
    weight = model.get_input_embeddings().weight
    return next(n for n, p in model.named_parameters() if p is weight)


def _permute_rows(w: torch.Tensor, n_head: int) -> torch.Tensor:
    """llama.cpp's converter's q/k permutation (LlamaModel.permute): per head, the two halves
    of the rotary dimensions interleave."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _source_reader(source: ModelSource):
    from gguf import GGUFReader

    if source.kind != "gguf":
        raise UserError(
            f"GGUF export copies the tokenizer and hyper-parameters from a GGUF model; {source.display} is "
            "not one: pass --model FILE.gguf (any type; the weights are re-quantized from its dequantized values)"
        )
    return GGUFReader(str(Path(source.path) / source.gguf_file))


def _copy_metadata(reader, writer) -> None:
    from gguf import GGUFValueType

    for key, field in reader.fields.items():
        if key.startswith(_SKIPPED_KEYS):
            continue
        vtype = field.types[0]
        sub = field.types[-1] if vtype == GGUFValueType.ARRAY else None
        writer.add_key_value(key, field.contents(), vtype, sub_type=sub)


def export_gguf(source: ModelSource, plan: Plan, out_file: str | Path, progress: bool = True) -> Path:
    """Quantize `source` under `plan` with the gguf package and write one GGUF file."""
    import gguf

    out = Path(out_file)
    if out.suffix.lower() != ".gguf":
        raise UserError(f"--out {out}: a GGUF export is one file; name it FILE.gguf")
    if out.exists():
        raise UserError(f"{out} exists; choose a new --out")
    reader = _source_reader(source)
    arch = str(reader.fields["general.architecture"].contents())
    if arch not in _ARCHITECTURES:
        raise UserError(f"GGUF export supports {', '.join(_ARCHITECTURES)} models; {source.display} is {arch}")
    layers = discover_layers(build_meta_model(load_config(source)))  # refuse in seconds, before loading
    plan.validate(layers)
    check_gguf_plan(plan, {l.name: l.in_features for l in layers})
    model = load_model(source, dtype=torch.float32)
    # check_gguf_plan leaves a tied lm_head only 16-bit or block formats: both share token_embd
    tied = {l.name for l in layers if l.tied}

    cfg = model.config
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH[arch.upper()], cfg.num_hidden_layers)
    permute = {"q_proj": cfg.num_attention_heads, "k_proj": cfg.num_key_value_heads} if _ARCHITECTURES[arch] else {}
    formats = {f"{name}.weight": fmt for name, fmt in plan.formats.items()}
    params = dict(model.named_parameters(remove_duplicate=False))
    for name in tied:
        fmt = plan.format_of(name)
        if not fmt.is_float:
            formats[_embedding_name(model)] = fmt

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")  # a crash leaves no half-written FILE.gguf
    writer = gguf.GGUFWriter(str(tmp), arch)
    _copy_metadata(reader, writer)
    writer.add_string(_PLAN_KEY, plan.summary())
    types: Counter[str] = Counter()
    with Progress(progress) as ui, torch.no_grad():
        bar = ui.phase("quantizing (gguf)", len(params))
        for hf_name, p in params.items():
            ui.advance(bar)
            if hf_name.removesuffix(".weight") in tied:
                continue  # llama.cpp reads a missing output.weight as tied to token_embd
            gguf_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
            if gguf_name is None:
                raise UserError(f"{hf_name}: no llama.cpp tensor name for it in architecture {arch}")
            w = p.detach().float().cpu()
            fmt = formats.get(hf_name)
            if fmt is not None:
                heads = permute.get(hf_name.removesuffix(".weight").rsplit(".", 1)[-1])
                data, raw = _encode(_permute_rows(w, heads) if heads else w, fmt)
                types[str(fmt)] += 1
            elif w.dim() == 1:
                data, raw = w.numpy(), None  # F32
            else:
                data, raw = w.to(torch.float16).numpy(), None  # embeddings: 16-bit, as the memory model counts
            writer.add_tensor(gguf_name, data, raw_dtype=raw)
        ui.note(f"writing {out} ({', '.join(f'{t} x{n}' for t, n in types.most_common())})")
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
    os.replace(tmp, out)
    return out


def tensor_types(path: str | Path) -> Counter[str]:
    """How many tensors of each ggml type a GGUF file holds (lower case: q4_0, f16, f32)."""
    from gguf import GGUFReader

    return Counter(t.tensor_type.name.lower() for t in GGUFReader(str(path)).tensors)
