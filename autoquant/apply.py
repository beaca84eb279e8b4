"""Apply a plan to a model in place.

Two modes:
  * "fake": each weight is replaced by its quantize-dequantize image in the model's own
    dtype. Any device, any architecture; what quality evaluation uses.
  * "packed": each quantized linear becomes a `kernels.QuantLinear` holding the packed
    codes (Triton kernels on CUDA, a reference path on CPU); what serving and export use.
A tied lm_head is untied first, so quantizing it leaves the input embedding intact.

Layers whose quantizer needs calibration (gptq, awq: `autoquant.quantizers`) take their input
moment H from `calibration` (`autoquant.calibration.input_moments`). awq's per-channel scales are
folded into the op before the layer first (`fold_awq_scales`), so both modes then store ordinary
codes: the fold changes only the fp weights of a norm or of up_proj.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

import torch
from torch import nn

from autoquant.errors import UserError
from autoquant.formats import QuantFormat
from autoquant.layers import is_linear, layer_role, linear_weight, set_module
from autoquant.plan import Plan
from autoquant.quant import dequantize, fake_quantize
from autoquant.quantizers import AWQ_ROLES, CALIBRATED, InputMoments, awq_scales, fake_quantize_weight, quantize_weight


def _untie(model: nn.Module, name: str) -> None:
    module = model.get_submodule(name)
    emb = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    if emb is not None and module.weight is getattr(emb, "weight", None):
        module.weight = nn.Parameter(module.weight.detach().clone(), requires_grad=False)
        if hasattr(model.config, "tie_word_embeddings"):
            model.config.tie_word_embeddings = False


def _set_weight_nk(module: nn.Module, w_nk: torch.Tensor) -> None:
    """Write a [N, K] weight back in the module's own orientation."""
    data = w_nk.t() if type(module).__name__ == "Conv1D" else w_nk
    module.weight.data.copy_(data)


@torch.no_grad()
def fake_quantize_layer(model: nn.Module, name: str, fmt: QuantFormat) -> None:
    _untie(model, name)
    module = model.get_submodule(name)
    _set_weight_nk(module, fake_quantize(linear_weight(module), fmt))


@torch.no_grad()
def apply_plan(
    model: nn.Module,
    plan: Plan | Mapping[str, QuantFormat],
    mode: str = "fake",
    calibration: InputMoments | None = None,
) -> nn.Module:
    formats = plan.formats if isinstance(plan, Plan) else plan
    quantizers = {n: plan.quantizer_of(n) for n in formats} if isinstance(plan, Plan) else {}
    if mode not in ("fake", "packed"):
        raise ValueError(f"mode must be 'fake' or 'packed', got {mode!r}")
    if calibration is None and any(q in CALIBRATED for q in quantizers.values()):
        raise ValueError("the plan uses gptq/awq: pass calibration (autoquant.calibration.input_moments)")
    # awq layers: scales folded into the previous op; they (and their input's other readers)
    # are then quantized in the scaled basis, whose input moment the fold returns
    moments = fold_awq_scales(model, formats, quantizers, calibration) if "awq" in quantizers.values() else {}
    for name, fmt in formats.items():
        module = model.get_submodule(name)
        if not is_linear(module):
            raise ValueError(f"{name} is not a linear layer")
        quantizer = quantizers.get(name, "rtn")
        quantizer = "rtn" if quantizer == "awq" else quantizer  # its scaling is folded in already
        if fmt.is_float or quantizer == "rtn":
            qw = None
        else:
            h = moments[name] if name in moments else torch.as_tensor(calibration.moment(name))
            qw = quantize_weight(linear_weight(module).detach(), fmt, quantizer, h)
        if mode == "fake":
            if qw is None:
                fake_quantize_layer(model, name, fmt)
            else:
                _untie(model, name)
                module = model.get_submodule(name)
                _set_weight_nk(module, dequantize(qw, dtype=module.weight.dtype))
        elif not fmt.is_float:
            from autoquant.kernels import QuantLinear  # the serving module lives with its kernels

            _untie(model, name)
            module = model.get_submodule(name)
            dtype = torch.float16 if module.weight.dtype == torch.float32 else module.weight.dtype
            bias = None if module.bias is None else module.bias.detach()
            if qw is None:
                new = QuantLinear.from_weight(linear_weight(module).detach(), bias, fmt, dtype=dtype)
            else:
                new = QuantLinear.from_quantized(qw, bias, dtype=dtype)
            set_module(model, name, new)
        else:
            fake_quantize_layer(model, name, fmt)
    return model


# ---- awq: where a layer's input scale folds -------------------------------------
# The op writing a layer's input, relative to the layer's block, by role: a norm (its weight,
# and bias if any, divide by s) or up_proj, whose rows divide by s (act(gate) * up is linear in up).
_NORM_BEFORE = {"q": "input_layernorm", "k": "input_layernorm", "v": "input_layernorm",
                "gate": "post_attention_layernorm", "up": "post_attention_layernorm"}


def awq_fold_target(model: nn.Module, name: str) -> tuple[str, str] | None:
    """(module name, "norm" | "rows") that awq's 1/s folds into for layer `name`, or None.

    Llama-style blocks only (Llama, Mistral, Qwen2): o_proj's input comes from the attention,
    whose grouped heads repeat v's rows; lm_head's norm also feeds nothing else but is left out
    with the tied embeddings it may share.
    """
    role = layer_role(name)
    parent = name.rpartition(".")[0]
    block = parent.rpartition(".")[0]
    if role in _NORM_BEFORE:
        target = f"{block}.{_NORM_BEFORE[role]}"
        kind = "norm"
    elif role == "down":
        target, kind = f"{parent}.up_proj", "rows"
        if not _has_module(model, f"{parent}.gate_proj"):
            return None  # not a gated MLP: an activation sits between up and down
    else:
        return None
    if not _has_module(model, target) or getattr(model.get_submodule(target), "weight", None) is None:
        return None
    return target, kind


def _has_module(model: nn.Module, name: str) -> bool:
    try:
        model.get_submodule(name)
        return True
    except AttributeError:
        return False


def fold_awq_scales(
    model: nn.Module, formats: Mapping[str, QuantFormat], quantizers: Mapping[str, str], calibration: InputMoments
) -> dict[str, torch.Tensor]:
    """Search and fold awq scales, one s per input shared by its awq layers (q/k/v: one s).

    Every reader of a folded input has its columns multiplied by s (whatever its quantizer);
    returns their input moments in the scaled basis, H / (s s^T), for gptq.
    """
    awq = [n for n, q in quantizers.items() if q == "awq" and not formats[n].is_float]
    bad = [n for n in awq if awq_fold_target(model, n) is None]
    if bad:
        raise UserError(
            f"awq needs an op to fold its scales into; {bad[0]} has none ({len(bad)} such layers). "
            f"awq applies to the {'/'.join(AWQ_ROLES)} layers of Llama-style models"
        )
    groups: dict[str, list[str]] = {}
    for n in awq:
        groups.setdefault(calibration.input_of[n], []).append(n)
    moments = {}
    for key, members in groups.items():
        h = torch.as_tensor(calibration.moment(key)).float()
        weights = [linear_weight(model.get_submodule(n)).detach().float() for n in members]
        s = awq_scales(weights, [formats[n] for n in members], h)
        target, kind = awq_fold_target(model, members[0])
        op = model.get_submodule(target)
        if kind == "norm":
            op.weight.data.div_(s.to(op.weight.dtype))
            if getattr(op, "bias", None) is not None:
                op.bias.data.div_(s.to(op.bias.dtype))
        else:
            op.weight.data.div_(s.to(op.weight.dtype).unsqueeze(1))
        readers = [n for n in formats if calibration.input_of.get(n) == key]
        for n in readers:
            module = model.get_submodule(n)
            _set_weight_nk(module, linear_weight(module).detach() * s.to(module.weight.dtype))
            moments[n] = h / torch.outer(s, s)
    return moments


@contextlib.contextmanager
def temporarily_quantized(
    model: nn.Module,
    formats: Mapping[str, QuantFormat],
    quantizers: Mapping[str, str] | None = None,
    moments: Mapping[str, object] | None = None,
) -> Iterator[nn.Module]:
    """Fake-quantize some layers for the duration of the block, then restore the originals.

    Used to measure one layer's effect at a time without reloading the model. Each layer is
    quantized alone (`fake_quantize_weight`): awq with its own s, not the one its input's
    other readers would share under `apply_plan`.
    """
    quantizers = quantizers or {}
    moments = moments or {}
    saved = {}
    for name in formats:
        module = model.get_submodule(name)
        saved[name] = module.weight
        module.weight = nn.Parameter(module.weight.detach().clone(), requires_grad=False)
    try:
        with torch.no_grad():
            for name, fmt in formats.items():
                module = model.get_submodule(name)
                q = quantizers.get(name, "rtn")
                h = None if moments.get(name) is None else torch.as_tensor(moments[name])
                _set_weight_nk(module, fake_quantize_weight(linear_weight(module), fmt, q, h))
        yield model
    finally:
        for name, weight in saved.items():
            model.get_submodule(name).weight = weight
