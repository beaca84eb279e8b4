"""AWQ-style activation-aware scaling (Lin et al. 2023, "AWQ: Activation-aware Weight
Quantization"), on one input shared by one or more layers (q/k/v, gate/up, or down alone).

A layer W [N, K] is stored as Q(W diag(s)) and its input divided by s, folded into the op that
writes that input: a norm's weight (and bias), or up_proj's rows for down_proj (act(gate) * up
is linear in up). s = rms(x)^alpha per input channel, normalised to a geometric mean of 1; alpha
is the grid point whose summed output error tr(dW H dW^T) over the input's readers is least, so
alpha = 0 (round-to-nearest) is always a candidate and awq never does worse than rtn on H.
No weight-clipping search (the paper's second step).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from autoquant.formats import QuantFormat
from autoquant.layers import layer_role
from autoquant.quant import dequantize, quantize

GRID = 20  # alpha in {0, 1/20, ..., 19/20}

# The norm written before a role's input, relative to the layer's block (Llama, Mistral, Qwen2).
_NORM_BEFORE = {"q": "input_layernorm", "k": "input_layernorm", "v": "input_layernorm",
                "gate": "post_attention_layernorm", "up": "post_attention_layernorm"}


def output_error(w: torch.Tensor, w_hat: torch.Tensor, h: torch.Tensor) -> float:
    """Summed squared output error over the calibration tokens, tr(dW H dW^T), H = X^T X."""
    d = w.float() - w_hat.float()
    return float(((d @ h.float()) * d).sum())


@torch.no_grad()
def awq_scales(weights: Sequence[torch.Tensor], formats: Sequence[QuantFormat], h: torch.Tensor,
               grid: int = GRID) -> torch.Tensor:
    """Per-input-channel scales s [K] for the layers `weights` reading one input with Hessian H."""
    h = h.detach().float()
    rms = torch.diag(h).clamp(min=0).sqrt().clamp(min=1e-8)
    best, best_s = None, torch.ones_like(rms)
    for step in range(grid):
        s = rms.pow(step / grid)
        s = s / torch.exp(torch.log(s).mean())  # only ratios between channels matter
        total = 0.0
        for w, fmt in zip(weights, formats):
            wf = w.detach().float()
            total += output_error(wf, dequantize(quantize(wf * s, fmt)) / s, h)
        if best is None or total < best:
            best, best_s = total, s
    return best_s


def fold_target(model: nn.Module, name: str) -> tuple[str, str] | None:
    """(module name, "norm" | "rows") that layer `name`'s 1/s folds into, or None where nothing
    can take it: o_proj (grouped-query attention repeats v's rows), lm_head, non-gated MLPs."""
    role = layer_role(name)
    parent = name.rpartition(".")[0]
    block = parent.rpartition(".")[0]
    if role in _NORM_BEFORE:
        target, kind = f"{block}.{_NORM_BEFORE[role]}", "norm"
    elif role == "down" and _has(model, f"{parent}.gate_proj"):
        target, kind = f"{parent}.up_proj", "rows"
    else:
        return None
    if not _has(model, target) or getattr(model.get_submodule(target), "weight", None) is None:
        return None
    return target, kind


def fold(model: nn.Module, target: str, kind: str, s: torch.Tensor) -> None:
    """Divide the output of `target` by s: the norm's weight (and bias), or the linear's rows."""
    op = model.get_submodule(target)
    if kind == "norm":
        op.weight.data.div_(s.to(op.weight.dtype))
        if getattr(op, "bias", None) is not None:
            op.bias.data.div_(s.to(op.bias.dtype))
    else:
        op.weight.data.div_(s.to(op.weight.dtype).unsqueeze(1))
        if getattr(op, "bias", None) is not None:
            op.bias.data.div_(s.to(op.bias.dtype))


def _has(model: nn.Module, name: str) -> bool:
    try:
        model.get_submodule(name)
        return True
    except AttributeError:
        return False
