"""Apply a plan to a model in place.

Two modes:
  * "fake": each weight is replaced by its quantize-dequantize image in the model's own
    dtype. Any device, any architecture; what quality evaluation uses.
  * "packed": each quantized linear becomes a `kernels.QuantLinear` holding the packed
    codes (Triton kernels on CUDA, a reference path on CPU); what serving and export use.
A tied lm_head is untied first, so quantizing it leaves the input embedding intact; except in
a llama.cpp block format, where a GGUF file holds one `token_embd` for both roles: then the one
shared tensor is quantized and the lookup reads the quantized rows, as llama.cpp does.

A plan with gptq or awq layers (`Plan.calibrated`) needs calibration windows of token ids: the
whole model is then quantized block by block (`quantizers.calibrate.quantize_model`), awq's
scales folded into the ops before their layers; the result is still ordinary codes + scales.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

import torch
from torch import nn

from autoquant.errors import UserError
from autoquant.formats import QuantFormat
from autoquant.layers import is_linear, linear_weight, set_linear_weight, set_module, untie_weight
from autoquant.plan import Plan
from autoquant.quant import QuantizedWeight, fake_quantize
from autoquant.quantizers.calibrate import quantize_model


def _tied_embedding(model: nn.Module, name: str) -> nn.Module | None:
    """The input embedding whose weight the layer `name` shares, if it does."""
    module = model.get_submodule(name)
    emb = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    return emb if emb is not None and module.weight is getattr(emb, "weight", None) else None


@torch.no_grad()
def fake_quantize_layer(model: nn.Module, name: str, fmt: QuantFormat) -> None:
    if not fmt.is_gguf:  # a block format keeps the tie: the file's one token_embd
        untie_weight(model, name)
    module = model.get_submodule(name)
    set_linear_weight(module, fake_quantize(linear_weight(module), fmt))


@torch.no_grad()
def apply_plan(model: nn.Module, plan: Plan | Mapping[str, QuantFormat], mode: str = "fake",
               calibration: torch.Tensor | None = None) -> nn.Module:
    """`calibration`: windows [n, seq] of token ids, needed by plans with gptq/awq layers."""
    formats = plan.formats if isinstance(plan, Plan) else plan
    if mode not in ("fake", "packed"):
        raise ValueError(f"mode must be 'fake' or 'packed', got {mode!r}")
    if mode == "packed":  # refuse before any layer is swapped
        for name, fmt in formats.items():
            if fmt.is_gguf:
                raise UserError(f"{name}: {fmt} is a llama.cpp block format, which autoquant's kernels do not run; "
                                "export the plan with --format gguf")
    for name in formats:
        if not is_linear(model.get_submodule(name)):
            raise ValueError(f"{name} is not a linear layer")
    stored: dict[str, QuantizedWeight] = {}
    if isinstance(plan, Plan) and plan.calibrated:
        stored = _quantize_calibrated(model, plan, calibration)
    for name, fmt in formats.items():
        if name in stored and mode == "fake":
            continue  # already fake-quantized in place
        if mode == "fake":
            fake_quantize_layer(model, name, fmt)
        elif not fmt.is_float:
            from autoquant.kernels import QuantLinear  # the serving module lives with its kernels

            untie_weight(model, name)
            module = model.get_submodule(name)
            dtype = torch.float16 if module.weight.dtype == torch.float32 else module.weight.dtype
            bias = None if module.bias is None else module.bias.detach()
            if name in stored:
                new = QuantLinear.from_quantized(stored[name], bias, dtype=dtype)
            else:
                new = QuantLinear.from_weight(linear_weight(module).detach(), bias, fmt, dtype=dtype)
            set_module(model, name, new)
        else:
            fake_quantize_layer(model, name, fmt)
    return model


def _quantize_calibrated(model: nn.Module, plan: Plan, calibration: torch.Tensor | None) -> dict[str, QuantizedWeight]:
    if calibration is None:
        raise ValueError("the plan has gptq/awq layers: pass calibration windows of token ids")
    return quantize_model(model, plan.formats, plan.quantizers, calibration)


@contextlib.contextmanager
def temporarily_replaced(model: nn.Module, weights: Mapping[str, torch.Tensor]) -> Iterator[nn.Module]:
    """Layers' weights replaced by given [N, K] tensors (one layer as gptq quantized it, say) for
    the duration of the block, then the originals put back (a tied one stays tied)."""
    saved = {}
    try:
        with torch.no_grad():
            for name, w in weights.items():
                module = model.get_submodule(name)
                saved[name] = module.weight
                module.weight = nn.Parameter(module.weight.detach().clone(), requires_grad=False)
                set_linear_weight(module, w.to(module.weight.dtype))
        yield model
    finally:
        for name, weight in saved.items():
            model.get_submodule(name).weight = weight


@contextlib.contextmanager
def temporarily_quantized(model: nn.Module, plan: Plan | Mapping[str, QuantFormat],
                          calibration: torch.Tensor | None = None) -> Iterator[nn.Module]:
    """Fake-quantize some layers for the duration of the block, then restore the originals.

    Used to measure one layer's effect at a time without reloading the model. A calibrated plan
    (gptq/awq) may also fold scales into norms and other layers: every parameter is restored.
    """
    formats = plan.formats if isinstance(plan, Plan) else plan
    calibrated = isinstance(plan, Plan) and plan.calibrated
    saved = {}
    shared = {}  # tied lm_head in a block format -> the embedding that reads the same tensor
    for name, fmt in formats.items():
        module = model.get_submodule(name)
        emb = _tied_embedding(model, name) if fmt.is_gguf else None
        saved[name] = module.weight
        module.weight = nn.Parameter(module.weight.detach().clone(), requires_grad=False)
        if emb is not None:
            shared[name] = emb
            emb.weight = module.weight
    others = {}
    if calibrated:
        layer_weights = {id(w) for w in saved.values()} | {id(model.get_submodule(n).weight) for n in formats}
        others = {k: p.detach().clone() for k, p in model.named_parameters() if id(p) not in layer_weights}
    try:
        with torch.no_grad():
            if calibrated:
                _quantize_calibrated(model, plan, calibration)
            else:
                for name, fmt in formats.items():
                    module = model.get_submodule(name)
                    set_linear_weight(module, fake_quantize(linear_weight(module), fmt))
        yield model
    finally:
        for name, weight in saved.items():
            model.get_submodule(name).weight = weight
            if name in shared:
                shared[name].weight = weight
        with torch.no_grad():
            params = dict(model.named_parameters())
            for k, data in others.items():
                params[k].data.copy_(data)
