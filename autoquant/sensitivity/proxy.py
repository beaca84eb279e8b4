"""The proxy error of one layer in one format, from calibration statistics.

With dW = W - W_q, W_q what the quantizer gives W in the format (round-to-nearest:
`autoquant.quant.fake_quantize`; gptq and awq: `autoquant.quantizers.single`, from the same H),
and H = E[x x^T] the layer's input second moment, the output error per channel i is

    e_i = (dW H dW^T)_ii = E[(dW x)_i^2]          trace(dW H dW^T) = sum_i e_i

Three normalisations of it are kept, so layers can be compared:

    "fisher"    0.5 * sum_i G_i e_i        G_i = E[g_i^2], the Fisher diagonal at the output
                                          (statistics.py): a second-order estimate of the KL
                                          in nats/token, assuming dY and g independent
    "relative"  trace(dW H dW^T) / trace(W H W^T), the output noise-to-signal ratio
    "output"    trace(dW H dW^T), the raw output error energy

All three are computed and cached (as `ProxyParts`); `NORMALISATIONS[0]` is the one the
table uses, chosen by measured rank agreement with the KL on SmolLM2 (see bench/README.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import time

import numpy as np
import torch

from autoquant.formats import QuantFormat
from autoquant.quantizers.single import quantized_alone

NORMALISATIONS = ("fisher", "relative", "output")


@dataclass(frozen=True)
class ProxyParts:
    """The pieces every normalisation is made of, for one (layer, format)."""

    output_error: float  # trace(dW H dW^T)
    output_energy: float  # trace(W H W^T) of the unquantized layer
    fisher_error: float | None  # 0.5 * sum_i G_i (dW H dW^T)_ii; None without gradients

    def value(self, normalisation: str) -> float:
        if normalisation == "fisher":
            if self.fisher_error is None:
                raise ValueError("no gradient statistics: the fisher proxy is unavailable")
            return self.fisher_error
        if normalisation == "relative":
            return self.output_error / self.output_energy if self.output_energy > 0 else 0.0
        if normalisation == "output":
            return self.output_error
        raise ValueError(f"unknown normalisation {normalisation!r}; expected one of {NORMALISATIONS}")


def _row_energy(w: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """diag(W H W^T) [N], in row chunks so a 49152-row lm_head needs no second full copy."""
    out = torch.empty(w.shape[0], dtype=torch.float64, device=w.device)
    for start in range(0, w.shape[0], 8192):
        rows = w[start : start + 8192]
        out[start : start + 8192] = ((rows @ h) * rows).sum(1, dtype=torch.float64)
    return out


@torch.no_grad()
def proxy_parts(
    weight: torch.Tensor, moment: np.ndarray | torch.Tensor, grad_sq: np.ndarray | torch.Tensor | None,
    variants: list[QuantFormat | tuple[QuantFormat, str]], seconds: dict[str, float] | None = None,
) -> dict:
    """ProxyParts of a weight [N, K] in each variant, H [K, K] and G [N] from `LayerStatistics`:
    a variant is a format (round-to-nearest) or a (format, quantizer) pair, and keys its result.
    `seconds` (if given) gets each quantizer's time added to it."""
    w = weight.detach().float()
    h = torch.as_tensor(moment, device=w.device).float()
    g = None if grad_sq is None else torch.as_tensor(grad_sq, device=w.device).double()
    energy = float(_row_energy(w, h).sum())
    out = {}
    for variant in variants:
        fmt, quantizer = variant if isinstance(variant, tuple) else (variant, "rtn")
        t = time.perf_counter()
        dw = w - quantized_alone(w, fmt, quantizer, h)
        e = _row_energy(dw, h).clamp(min=0.0)  # H is PSD; clamp rounding below zero
        fisher = None if g is None else float(0.5 * (g * e).sum())
        out[variant] = ProxyParts(float(e.sum()), energy, fisher)
        if seconds is not None:
            seconds[quantizer] = seconds.get(quantizer, 0.0) + time.perf_counter() - t
    return out
