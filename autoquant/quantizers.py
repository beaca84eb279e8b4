"""Quantizers: how a weight's codes are chosen. Every one returns an ordinary `QuantizedWeight`.

    rtn    round-to-nearest (`autoquant.quant.quantize`); needs no calibration.
    gptq   GPTQ (Frantar et al. 2022): quantizes W column by column and spreads each column's
           rounding error over the columns not yet quantized, weighted by the inverse of the
           input second moment H = X^T X / n; dampened, in blocks (lazy batch updates).
           No activation reordering: columns go in their stored order, so scale groups stay
           contiguous and every kernel and export format serves the result unchanged.
    awq    activation-aware scaling (Lin et al. 2023): W is quantized as W diag(s), with a
           per-input-channel s = rms(x)^alpha (alpha searched on a grid against the output error
           under H), and the model's previous op is divided by s (`autoquant.awq_fold`). The
           codes stay ordinary; only the previous op's weights change. No weight clipping search.

All the arithmetic of rounding and packing stays in `autoquant.quant`; this module only
chooses which codes and qparams to hand it. H is the layer's input moment from one
calibration pass (`autoquant.sensitivity.statistics`), the same one the sensitivity proxy uses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np
import torch

from autoquant.formats import QuantFormat
from autoquant.quant import QuantizedWeight, choose_qparams, dequantize, pack_weight, quantize, quantize_codes

QUANTIZERS = ("rtn", "gptq", "awq")
CALIBRATED = ("gptq", "awq")  # quantizers that need the layer's input moment H
AWQ_ROLES = ("q", "k", "v", "gate", "up", "down")  # roles whose input scale folds (Llama-style blocks)
# Bump when a quantizer's result changes: part of the sensitivity cache key.
QUANTIZER_VERSIONS = {"rtn": "1", "gptq": "1", "awq": "1"}

GPTQ_DAMP = 0.01  # dampening: fraction of mean(diag H) added to the diagonal (the paper's default)
GPTQ_BLOCK = 128  # columns per lazy-batch block (a multiple of every group size)
AWQ_GRID = 20  # alpha in {0, 1/20, ..., 19/20}; alpha = 0 is RTN, so AWQ never does worse on H


class InputMoments(Protocol):
    """What a calibration pass hands the quantizers (`sensitivity.statistics.LayerStatistics`)."""

    input_of: Mapping[str, str]  # layer -> the key of its input (layers reading one tensor share it)

    def moment(self, layer: str) -> np.ndarray:  # H = X^T X / n of the layer's input [K, K]
        ...


def parse_quantizer(name: str) -> str:
    q = name.strip().lower()
    if q not in QUANTIZERS:
        raise ValueError(f"unknown quantizer {name!r}; expected one of {', '.join(QUANTIZERS)}")
    return q


def choice_key(fmt: QuantFormat | str, quantizer: str = "rtn") -> str:
    """How a (format, quantizer) pair is named in profiles and caches: `int4-g128-asym` for rtn
    (so RTN results keep their old names), `int4-g128-asym@gptq` otherwise."""
    return str(fmt) if quantizer == "rtn" else f"{fmt}@{quantizer}"


def parse_choice(key: str) -> tuple[QuantFormat, str]:
    fmt, _, quantizer = key.partition("@")
    return QuantFormat.parse(fmt), parse_quantizer(quantizer or "rtn")


def versions_key() -> str:
    """The quantizers' method versions, for cache keys."""
    return ",".join(f"{q}{v}" for q, v in sorted(QUANTIZER_VERSIONS.items()))


def quantize_weight(w: torch.Tensor, fmt: QuantFormat, quantizer: str = "rtn", h: torch.Tensor | None = None) -> QuantizedWeight:
    """W [N, K] under `fmt` by `quantizer`; gptq and awq need H [K, K] of the layer's input.

    awq's result is of W diag(s): the caller divides the layer's input by s (folds it into
    the previous op); `awq_scales` gives s. For one layer alone, `fake_quantize_weight` does both.
    """
    if quantizer == "rtn":
        return quantize(w, fmt)
    if h is None:
        raise ValueError(f"{quantizer} needs the layer's input moment H")
    if quantizer == "gptq":
        return gptq(w, fmt, h)
    if quantizer == "awq":
        s = awq_scales([w], [fmt], h)
        return quantize(w.float() * s, fmt)
    raise ValueError(f"unknown quantizer {quantizer!r}")


def fake_quantize_weight(w: torch.Tensor, fmt: QuantFormat, quantizer: str = "rtn", h: torch.Tensor | None = None) -> torch.Tensor:
    """What the layer computes with once quantized, in W's dtype: awq's s divided back out
    (exactly what folding 1/s into the previous op gives, up to that op's rounding)."""
    if fmt.is_float or quantizer == "rtn":
        from autoquant.quant import fake_quantize

        return fake_quantize(w, fmt)
    if quantizer == "awq":
        s = awq_scales([w], [fmt], h)
        return (dequantize(quantize(w.float() * s, fmt)) / s).to(w.dtype)
    return dequantize(quantize_weight(w, fmt, quantizer, h), dtype=w.dtype)


def output_error(w: torch.Tensor, w_hat: torch.Tensor, h: torch.Tensor) -> float:
    """Mean squared output error per token, tr(dW H dW^T), of W_hat against W under H."""
    d = (w.float() - w_hat.float())
    return float(((d @ h.float()) * d).sum())


# ---- GPTQ ------------------------------------------------------------------
def _inverse_cholesky(h: torch.Tensor, damp: float) -> torch.Tensor:
    """Upper Cholesky factor of (H + damp * mean(diag H) I)^-1, as GPTQ uses it."""
    h = h.double().clone()
    idx = torch.arange(h.shape[0])
    h[idx, idx] += damp * torch.mean(torch.diag(h)).clamp(min=1e-12)
    for extra in (0.0, 1e-6, 1e-4, 1e-2):  # a near-singular H (few tokens) gets more damping
        try:
            hd = h.clone()
            hd[idx, idx] += extra * torch.mean(torch.diag(h))
            lower = torch.linalg.cholesky(hd)
            return torch.linalg.cholesky(torch.cholesky_inverse(lower), upper=True)
        except torch.linalg.LinAlgError:
            continue
    raise ValueError("input moment H is not positive definite even after dampening")


@torch.no_grad()
def gptq(w: torch.Tensor, fmt: QuantFormat, h: torch.Tensor, damp: float = GPTQ_DAMP, block: int = GPTQ_BLOCK) -> QuantizedWeight:
    """GPTQ of W [N, K] under `fmt` with input moment H [K, K] (any scale: only its shape matters).

    A group's scale (and zero) is chosen when its first column is reached, from the weights as
    updated by the errors of the columns before it, as in the reference implementation.
    """
    if fmt.is_float:
        raise ValueError(f"{fmt} is not an integer format")
    n, k = w.shape
    w = w.detach().double().clone()
    h = h.detach().double().clone()
    dead = torch.diag(h) == 0  # inputs that never fire: their weights cannot matter
    h[dead, dead] = 1.0
    w[:, dead] = 0.0
    hinv = _inverse_cholesky(h, damp)
    group = fmt.effective_group(k)
    if fmt.group_size is not None:
        block = max(group, block - block % group)  # every group starts inside one block
    codes = torch.zeros(n, k, dtype=torch.uint8)
    n_groups = fmt.groups(k)
    scales = torch.zeros(n, n_groups, dtype=torch.float16)
    zeros = None if fmt.symmetric else torch.zeros(n, n_groups, dtype=torch.uint8)
    if fmt.group_size is None:
        s, z = choose_qparams(w, fmt)
        scales[:], zeros = s, z
    for b0 in range(0, k, block):
        b1 = min(b0 + block, k)
        w1 = w[:, b0:b1].clone()
        err = torch.zeros_like(w1)
        hb = hinv[b0:b1, b0:b1]
        for i in range(b1 - b0):
            col = b0 + i
            if fmt.group_size is not None and col % group == 0:
                gi = col // group
                s, z = choose_qparams(w1[:, i : i + group], fmt)
                scales[:, gi : gi + 1] = s
                if zeros is not None:
                    zeros[:, gi : gi + 1] = z
            gi = 0 if fmt.group_size is None else col // group
            s, z = scales[:, gi : gi + 1], None if zeros is None else zeros[:, gi : gi + 1]
            q = quantize_codes(w1[:, i : i + 1], fmt, s, z)
            codes[:, col] = q[:, 0]
            zq = float(fmt.sym_zero) if z is None else z.double()
            deq = ((q.double() - zq) * s.double())[:, 0]
            e = (w1[:, i] - deq) / hb[i, i]
            w1[:, i:] -= e.unsqueeze(1) @ hb[i, i:].unsqueeze(0)
            err[:, i] = e
        w[:, b1:] -= err @ hinv[b0:b1, b1:]
    return pack_weight(codes, fmt, scales, zeros)


# ---- AWQ -------------------------------------------------------------------
@torch.no_grad()
def awq_scales(weights: Sequence[torch.Tensor], formats: Sequence[QuantFormat], h: torch.Tensor, grid: int = AWQ_GRID) -> torch.Tensor:
    """Per-input-channel scales s [K] for layers reading one input (q/k/v, gate/up, or one layer).

    s = rms(x)^alpha, normalised to a geometric mean of 1; alpha is the grid point with the least
    summed output error tr(dW H dW^T) of the layers, each quantized as Q(W diag(s)) diag(s)^-1.
    """
    h = h.detach().float()
    rms = torch.diag(h).clamp(min=0).sqrt().clamp(min=1e-8)
    best, best_s = None, torch.ones_like(rms)
    for step in range(grid):
        alpha = step / grid
        s = rms.pow(alpha)
        s = s / torch.exp(torch.log(s).mean())  # scale-free: only ratios between channels matter
        total = 0.0
        for w, fmt in zip(weights, formats):
            wf = w.detach().float()
            w_hat = dequantize(quantize(wf * s, fmt)) / s
            total += output_error(wf, w_hat, h)
        if best is None or total < best:
            best, best_s = total, s
    return best_s
