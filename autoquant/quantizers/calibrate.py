"""Quantize a whole model under a plan, block by block, as GPTQ's reference does.

The calibration windows run through the model once to the first block; then, per block:
  1. one pass of the block's (still float) layers over the block's inputs collects each
     linear's input Hessian H = X^T X;
  2. awq scales are searched on H and folded into the ops before their layers (the other
     readers of a folded input, whatever their quantizer, see it scaled too: their columns
     are multiplied by s, their H divided by s s^T);
  3. every plan layer of the block is quantized (rtn, gptq from H) and written back
     fake-quantized;
  4. a second pass of the now quantized block gives the next block's inputs.
So each block is calibrated on what the quantized model before it really produces. Layers
outside the blocks (lm_head) are quantized last, gptq's H from one pass of the quantized model.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

import torch
from torch import nn

from autoquant.errors import UserError
from autoquant.formats import QuantFormat
from autoquant.layers import linear_weight, set_linear_weight, untie_weight
from autoquant.quant import QuantizedWeight, dequantize, fake_quantize, quantize
from autoquant.quantizers import AWQ_ROLES
from autoquant.quantizers.awq import awq_scales, fold, fold_target
from autoquant.quantizers.gptq import gptq

# GPTQ's H of a K-wide input needs several times K tokens to be well conditioned (SmolLM2's
# down_proj reads 1,536 inputs); published GPTQ runs use 128 x 2,048 tokens on GPUs.
CALIB_TOKENS = 8192
CALIB_SEQ = 512
_BLOCK_PREFIX = re.compile(r"^(.*?\.(?:layers|h|blocks|layer)\.\d+)\.")


class _Stop(Exception):
    """Raised by the hook that captures the first block's inputs: the rest of the forward is not needed."""


class _Hessians:
    """Forward hooks summing X^T X of the inputs of some linear layers."""

    def __init__(self, model: nn.Module, names: list[str]) -> None:
        self.h: dict[str, torch.Tensor] = {}
        self._last: tuple[torch.Tensor | None, torch.Tensor | None] = (None, None)
        self._handles = [model.get_submodule(n).register_forward_hook(self._hook(n)) for n in names]

    def _hook(self, name: str) -> Callable:
        def hook(module, args, output):
            x = args[0]
            if x is not self._last[0]:  # q/k/v (gate/up) read one tensor: its X^T X once
                flat = x.detach().reshape(-1, x.shape[-1]).float()
                self._last = (x, flat.t() @ flat)
            h = self._last[1]
            self.h[name] = h.clone() if name not in self.h else self.h[name] + h
        return hook

    def close(self) -> None:
        self._last = (None, None)
        for handle in self._handles:
            handle.remove()


def _first_block_inputs(model: nn.Module, block: nn.Module, windows: torch.Tensor, batch_size: int) -> list[tuple]:
    captured: list[tuple] = []

    def hook(module, args, kwargs):
        captured.append((args, kwargs))
        raise _Stop

    handle = block.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        for batch in windows.split(batch_size):
            try:
                model(batch.to(next(model.parameters()).device), use_cache=False)
            except _Stop:
                pass
    finally:
        handle.remove()
    return captured


def _run_block(block: nn.Module, inputs: list[tuple]) -> list[tuple]:
    outs = []
    for args, kwargs in inputs:
        out = block(*args, **kwargs)
        hidden = out[0] if isinstance(out, tuple) else out
        outs.append(((hidden, *args[1:]), kwargs))
    return outs


@torch.no_grad()
def quantize_model(model: nn.Module, formats: Mapping[str, QuantFormat], quantizers: Mapping[str, str],
                   windows: torch.Tensor, batch_size: int = 4,
                   on_layer: Callable[[str], None] | None = None, act_order: bool = True) -> dict[str, QuantizedWeight]:
    """Fake-quantize every layer of `formats` in place, each by its quantizer (default rtn), with
    calibration `windows` [n, seq] of token ids; returns the stored form of the integer layers.
    `act_order`: gptq in order of decreasing input energy, with static groups (on SmolLM2 it
    cut int4-g128's KL well below plain column order: bench/results/quantizers-smollm2.json)."""
    stored: dict[str, QuantizedWeight] = {}
    blocks: dict[str, list[str]] = {}
    rest: list[str] = []
    for name in formats:
        m = _BLOCK_PREFIX.match(name)
        (blocks.setdefault(m.group(1), []) if m else rest).append(name)
    prefixes = sorted(blocks, key=lambda p: int(p.rpartition(".")[2]))  # the model's order
    calibrated = {p for p in prefixes if any(quantizers.get(n, "rtn") != "rtn" for n in blocks[p])}
    inputs = _first_block_inputs(model, model.get_submodule(prefixes[0]), windows, batch_size) if calibrated else []
    for i, prefix in enumerate(prefixes):
        block = model.get_submodule(prefix)
        names = blocks[prefix]
        hessians = _Hessians(model, [n for n in names if quantizers.get(n, "rtn") != "rtn"])
        try:
            if prefix in calibrated:  # an all-rtn block needs no statistics, only its outputs
                _run_block(block, inputs)
        finally:
            hessians.close()
        h = _fold_awq(model, names, formats, quantizers, hessians.h)
        for name in names:
            _quantize_layer(model, name, formats[name], quantizers.get(name, "rtn"), h.get(name), stored, act_order)
            if on_layer:
                on_layer(name)
        if calibrated & set(prefixes[i + 1 :]):
            inputs = _run_block(block, inputs)
    del inputs
    calibrated_rest = [n for n in rest if quantizers.get(n, "rtn") != "rtn"]
    h_rest: dict[str, torch.Tensor] = {}
    if calibrated_rest:
        hessians = _Hessians(model, calibrated_rest)
        try:
            for batch in windows.split(batch_size):
                model(batch.to(next(model.parameters()).device), use_cache=False)
        finally:
            hessians.close()
        h_rest = hessians.h
    for name in rest:
        _quantize_layer(model, name, formats[name], quantizers.get(name, "rtn"), h_rest.get(name), stored, act_order)
        if on_layer:
            on_layer(name)
    return stored


def _fold_awq(model: nn.Module, names: list[str], formats: Mapping[str, QuantFormat],
              quantizers: Mapping[str, str], h: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Search and fold the block's awq scales, one s per folded input; returns every layer's H
    in the basis it is then quantized in."""
    h = dict(h)
    readers: dict[tuple[str, str], list[str]] = {}
    for name in names:
        target = fold_target(model, name)
        if target is None and quantizers.get(name) == "awq" and not formats[name].is_float:
            raise UserError(f"awq needs an op before {name} to fold its scales into, and it has none: awq applies "
                            f"to the {'/'.join(AWQ_ROLES)} layers of Llama-style models (Llama, Mistral, Qwen2)")
        if target is not None:
            readers.setdefault(target, []).append(name)
    for (target, kind), group in readers.items():
        awq = [n for n in group if quantizers.get(n) == "awq"]
        if not awq:
            continue
        ws = [linear_weight(model.get_submodule(n)).float() for n in awq]
        s = awq_scales(ws, [formats[n] for n in awq], h[awq[0]])
        fold(model, target, kind, s)
        for n in group:
            module = model.get_submodule(n)
            set_linear_weight(module, linear_weight(module).float() * s)
            if n in h:
                h[n] = h[n] / torch.outer(s, s)
    return h


def _quantize_layer(model: nn.Module, name: str, fmt: QuantFormat, quantizer: str, h: torch.Tensor | None,
                    stored: dict[str, QuantizedWeight], act_order: bool = False) -> None:
    untie_weight(model, name)
    module = model.get_submodule(name)
    w = linear_weight(module).detach()
    if fmt.is_float:
        return  # 16-bit layers stay as loaded (apply_plan rounds them itself)
    if fmt.is_gguf:
        set_linear_weight(module, fake_quantize(w, fmt))
        return
    qw = gptq(w, fmt, h, act_order=act_order) if quantizer == "gptq" else quantize(w, fmt)  # awq: rtn of the scaled W
    stored[name] = qw
    set_linear_weight(module, dequantize(qw, dtype=w.dtype))


def calibration_windows(tokenizer, text=None, tokens: int = CALIB_TOKENS, seq_len: int = CALIB_SEQ) -> torch.Tensor:
    """Windows [n, seq] of calibration text (default: wikitext-2 validation, embedded) for gptq/awq."""
    from autoquant.data import calibration_text, token_windows

    return token_windows(tokenizer, text or calibration_text(), min(seq_len, tokens), tokens)
