"""Apply a plan to a model in place.

Two modes:
  * "fake": each weight is replaced by its quantize-dequantize image in the model's own
    dtype. Any device, any architecture; what quality evaluation uses.
  * "packed": each quantized linear becomes a `kernels.QuantLinear` holding the packed
    codes (Triton kernels on CUDA, a reference path on CPU); what serving and export use.
A tied lm_head is untied first, so quantizing it leaves the input embedding intact; except in
a llama.cpp block format, where a GGUF file holds one `token_embd` for both roles: then the one
shared tensor is quantized and the lookup reads the quantized rows, as llama.cpp does.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

import torch
from torch import nn

from autoquant.errors import UserError
from autoquant.formats import QuantFormat
from autoquant.layers import is_linear, linear_weight, set_module
from autoquant.plan import Plan
from autoquant.quant import fake_quantize


def _tied_embedding(model: nn.Module, name: str) -> nn.Module | None:
    """The input embedding whose weight the layer `name` shares, if it does."""
    module = model.get_submodule(name)
    emb = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    return emb if emb is not None and module.weight is getattr(emb, "weight", None) else None


def _untie(model: nn.Module, name: str) -> None:
    module = model.get_submodule(name)
    if _tied_embedding(model, name) is not None:
        module.weight = nn.Parameter(module.weight.detach().clone(), requires_grad=False)
        if hasattr(model.config, "tie_word_embeddings"):
            model.config.tie_word_embeddings = False


def _set_weight_nk(module: nn.Module, w_nk: torch.Tensor) -> None:
    """Write a [N, K] weight back in the module's own orientation."""
    data = w_nk.t() if type(module).__name__ == "Conv1D" else w_nk
    module.weight.data.copy_(data)


@torch.no_grad()
def fake_quantize_layer(model: nn.Module, name: str, fmt: QuantFormat) -> None:
    if not fmt.is_gguf:  # a block format keeps the tie: the file's one token_embd
        _untie(model, name)
    module = model.get_submodule(name)
    _set_weight_nk(module, fake_quantize(linear_weight(module), fmt))


@torch.no_grad()
def apply_plan(model: nn.Module, plan: Plan | Mapping[str, QuantFormat], mode: str = "fake") -> nn.Module:
    formats = plan.formats if isinstance(plan, Plan) else plan
    if mode not in ("fake", "packed"):
        raise ValueError(f"mode must be 'fake' or 'packed', got {mode!r}")
    if mode == "packed":  # refuse before any layer is swapped
        for name, fmt in formats.items():
            if fmt.is_gguf:
                raise UserError(f"{name}: {fmt} is a llama.cpp block format, which autoquant's kernels do not run; "
                                "export the plan with --format gguf")
    for name, fmt in formats.items():
        module = model.get_submodule(name)
        if not is_linear(module):
            raise ValueError(f"{name} is not a linear layer")
        if mode == "fake":
            fake_quantize_layer(model, name, fmt)
        elif not fmt.is_float:
            from autoquant.kernels import QuantLinear  # the serving module lives with its kernels

            _untie(model, name)
            module = model.get_submodule(name)
            dtype = torch.float16 if module.weight.dtype == torch.float32 else module.weight.dtype
            bias = None if module.bias is None else module.bias.detach()
            set_module(model, name, QuantLinear.from_weight(linear_weight(module).detach(), bias, fmt, dtype=dtype))
        else:
            fake_quantize_layer(model, name, fmt)
    return model


@contextlib.contextmanager
def temporarily_quantized(model: nn.Module, formats: Mapping[str, QuantFormat]) -> Iterator[nn.Module]:
    """Fake-quantize some layers for the duration of the block, then restore the originals.

    Used to measure one layer's effect at a time without reloading the model.
    """
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
    try:
        with torch.no_grad():
            for name, fmt in formats.items():
                module = model.get_submodule(name)
                _set_weight_nk(module, fake_quantize(linear_weight(module), fmt))
        yield model
    finally:
        for name, weight in saved.items():
            model.get_submodule(name).weight = weight
            if name in shared:
                shared[name].weight = weight
