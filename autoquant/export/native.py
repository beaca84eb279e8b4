"""autoquant's own checkpoint format (`--format autoquant`): QuantLinear state, one file.

The checkpoint directory holds
    model.safetensors        packed weights (QuantLinear codes/scales/zeros, 16-bit rest)
    config.json, tokenizer   as transformers writes them
    autoquant_plan.json      the plan (versioned), which says how to rebuild each layer
    README.md                how to load it

`load_quantized(dir)` rebuilds the architecture without allocating its float weights
(accelerate's empty-weights init), swaps in `QuantLinear` modules where the plan says so,
and loads the tensors: a 4-bit 70B checkpoint loads in about its own size.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from autoquant.apply import apply_plan
from autoquant.data import TextSource
from autoquant.errors import UserError
from autoquant.jsonfile import write_text
from autoquant.layers import discover_layers, linear_weight, set_module
from autoquant.models import ModelSource, load_model, load_tokenizer
from autoquant.plan import Plan, calibration_source

PLAN_FILE = "autoquant_plan.json"
WEIGHTS_FILE = "model.safetensors"

_README = """# {name}

Quantized with [autoquant](https://github.com/autoquant/autoquant): plan `{summary}`,
{bpw:.2f} bits per linear weight on average.

```python
from autoquant.export import load_quantized
model = load_quantized("{path}")          # CPU; pass device="cuda" for the Triton kernels
```
"""


def export_checkpoint(source: ModelSource, plan: Plan, out_dir: str | Path, dtype: torch.dtype = torch.float16,
                      calib: TextSource | None = None) -> Path:
    """Quantize `source` under `plan` for real and write the checkpoint directory (gptq/awq layers
    calibrated on `calib`, else on the text the plan records)."""
    from safetensors.torch import save_model

    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise UserError(f"export directory {out} is not empty; choose a new {{out_dir}}", params=("out_dir",))
    model = load_model(source, dtype=torch.float32)
    layers = discover_layers(model)
    plan.validate(layers)
    calibration = None
    if plan.calibrated:
        from autoquant.quantizers.calibrate import calibration_windows

        calib = calib or calibration_source(plan)[0]
        plan = replace(plan, calibration=calib.ref)
        calibration = calibration_windows(load_tokenizer(source), calib)
    apply_plan(model, plan, mode="packed", calibration=calibration)
    _cast_float_weights(model, dtype)
    out.mkdir(parents=True, exist_ok=True)
    save_model(model, str(out / WEIGHTS_FILE))  # handles a tied lm_head (shared tensor) once
    model.config.save_pretrained(out)
    try:
        load_tokenizer(source).save_pretrained(out)
    except UserError:
        pass  # a model directory without a tokenizer exports without one
    meta = dict(plan.metadata, export_dtype=str(dtype).removeprefix("torch."))
    replace(plan, model=plan.model or source.display, metadata=meta).save(out / PLAN_FILE)
    write_text(out / "README.md",
               _README.format(name=source.display, summary=plan.summary(), bpw=plan.bits_per_weight(layers), path=out))
    return out


def _cast_float_weights(model: nn.Module, dtype: torch.dtype) -> None:
    """16-bit for everything that is not a packed QuantLinear (whose fp16 scales stay fp16)."""
    from autoquant.kernels import QuantLinear

    for module in model.modules():
        if isinstance(module, QuantLinear):
            continue
        for name, p in module.named_parameters(recurse=False):
            if p.is_floating_point():
                p.data = p.data.to(dtype)


def load_native(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a model exported by `export_checkpoint`, with packed QuantLinear layers."""
    from accelerate import init_empty_weights
    from accelerate.utils import set_module_tensor_to_device
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForCausalLM

    from autoquant.kernels import QuantLinear

    path = Path(path)
    if not (path / PLAN_FILE).is_file() or not (path / WEIGHTS_FILE).is_file():
        raise UserError(f"{path} is not an autoquant checkpoint (needs {PLAN_FILE} and {WEIGHTS_FILE})")
    plan = Plan.load(path / PLAN_FILE)
    config = AutoConfig.from_pretrained(path)
    dtype = getattr(torch, plan.metadata.get("export_dtype", "float16"))
    with init_empty_weights(include_buffers=False):  # parameters on meta, buffers (rotary) real
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    for name, fmt in plan.formats.items():
        if fmt.is_float:
            continue
        old = model.get_submodule(name)
        out_f, in_f = linear_weight(old).shape
        set_module(model, name, QuantLinear(in_f, out_f, fmt, bias=old.bias is not None, dtype=dtype, device="meta"))
    state = load_file(str(path / WEIGHTS_FILE))
    for key, tensor in state.items():
        set_module_tensor_to_device(model, key, device, value=tensor)
    return finish_loading(model, config, path, device)


def finish_loading(model: nn.Module, config, path: Path, device: str | torch.device) -> nn.Module:
    """Tie what the config ties, refuse a model with tensors still on meta, move it to `device`."""
    if getattr(config, "tie_word_embeddings", False):
        model.tie_weights()
    missing = [n for n, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
    if missing:
        raise UserError(f"checkpoint {path} is incomplete: {len(missing)} tensors missing (e.g. {missing[0]})")
    return model.to(device).eval()
