"""The quantization arithmetic, in one place.

Round-to-nearest (RTN) quantization of a weight matrix W [N, K] (out, in) into the
layout described in `autoquant.formats` (llama.cpp's block formats are the gguf package's
arithmetic, wrapped in `autoquant.gguf_formats`; `fake_quantize` serves both). Everything that needs the math calls
this module: the model quantizers, the Triton kernels' tests and `QuantLinear`,
the sensitivity proxy and the exporter. Nothing else re-derives it.

Codes are unsigned ("offset binary"): w ~= (q - z) * s with q in [0, 2^bits - 1].
Symmetric formats use the fixed zero z = 2^(bits-1) and s = absmax / (2^(bits-1) - 1);
asymmetric ones use s = (max - min) / (2^bits - 1) with an integer z, the range
widened to include 0 so that zero weights (and padding) are exact.

Scales are stored as fp16, rounded *up* so the stored scale still covers the
range: the RTN error of every element is then at most s/2 with s the stored scale.
int4 codes are packed two a byte along K: byte j of a row holds code 2j in its
low nibble and code 2j+1 in its high nibble (K is padded to even with code 0,
which the kernels mask out through x = 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from autoquant import gguf_formats
from autoquant.formats import QuantFormat

_FP16_TINY = 2.0**-24  # smallest positive fp16 (subnormal); keeps scales non-zero


@dataclass
class QuantizedWeight:
    """A weight in its stored form. `codes` packed as the kernels read them."""

    format: QuantFormat
    shape: tuple[int, int]  # logical (out_features N, in_features K)
    codes: torch.Tensor  # uint8 [N, K] (int8) or [N, ceil(K/2)] (int4)
    scales: torch.Tensor  # fp16 [N, G]
    zeros: torch.Tensor | None  # uint8 [N, G] for asymmetric formats, else None

    @property
    def nbytes(self) -> int:
        n = self.codes.numel() * self.codes.element_size()
        n += self.scales.numel() * self.scales.element_size()
        if self.zeros is not None:
            n += self.zeros.numel() * self.zeros.element_size()
        return n

    @property
    def group_size(self) -> int:
        return self.format.effective_group(self.shape[1])

    def clone(self) -> QuantizedWeight:
        return QuantizedWeight(self.format, self.shape, self.codes.clone(), self.scales.clone(),
                               None if self.zeros is None else self.zeros.clone())

    def to(self, device: torch.device | str) -> QuantizedWeight:
        return QuantizedWeight(
            self.format,
            self.shape,
            self.codes.to(device),
            self.scales.to(device),
            None if self.zeros is None else self.zeros.to(device),
        )


# ---- int4 packing ---------------------------------------------------------
def pack_int4(codes: torch.Tensor) -> torch.Tensor:
    """uint8 codes [N, K] in [0, 15] -> uint8 [N, ceil(K/2)], even k low nibble."""
    if codes.dtype != torch.uint8:
        raise TypeError(f"codes must be uint8, got {codes.dtype}")
    n, k = codes.shape
    if k % 2:
        codes = torch.cat([codes, codes.new_zeros(n, 1)], dim=1)
    return codes[:, 0::2] | (codes[:, 1::2] << 4)


def unpack_int4(packed: torch.Tensor, in_features: int) -> torch.Tensor:
    """Inverse of `pack_int4`: uint8 [N, ceil(K/2)] -> uint8 codes [N, K]."""
    lo = packed & 0x0F
    hi = packed >> 4
    return torch.stack([lo, hi], dim=2).reshape(packed.shape[0], -1)[:, :in_features]


# ---- parameters -----------------------------------------------------------
def _grouped(w: torch.Tensor, group: int) -> torch.Tensor:
    """[N, K] -> [N, G, group], zero-padding the last group (zero is always representable)."""
    n, k = w.shape
    pad = (-k) % group
    if pad:
        w = torch.nn.functional.pad(w, (0, pad))
    return w.reshape(n, -1, group)


def _round_up_fp16(s: torch.Tensor) -> torch.Tensor:
    s16 = s.clamp(min=_FP16_TINY).to(torch.float16)
    low = s16.float() < s
    if low.any():
        s16 = torch.where(low, torch.nextafter(s16, torch.full_like(s16, float("inf"))), s16)
    return s16


def choose_qparams(w: torch.Tensor, fmt: QuantFormat) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Scales (fp16 [N, G]) and zero-points (uint8 [N, G] or None) for W [N, K]."""
    if fmt.is_float:
        raise ValueError(f"{fmt} is not an integer format")
    g = _grouped(w.detach().float(), fmt.effective_group(w.shape[1]))
    if fmt.symmetric:
        absmax = g.abs().amax(dim=2)
        scales = _round_up_fp16(absmax / (fmt.sym_zero - 1))
        return scales, None
    lo = g.amin(dim=2).clamp(max=0.0)
    hi = g.amax(dim=2).clamp(min=0.0)
    scales = _round_up_fp16((hi - lo) / fmt.qmax)
    zeros = torch.round(-lo / scales.float()).clamp(0, fmt.qmax).to(torch.uint8)
    return scales, zeros


# ---- quantize / dequantize ------------------------------------------------
def quantize(w: torch.Tensor, fmt: QuantFormat) -> QuantizedWeight:
    """RTN-quantize W [N, K] (any float dtype, any device) into its stored form."""
    if w.dim() != 2:
        raise ValueError(f"expected a 2-D weight, got shape {tuple(w.shape)}")
    if fmt.is_gguf:
        raise ValueError(f"{fmt} is a llama.cpp block format: gguf_formats.quantize writes its GGUF bytes")
    scales, zeros = choose_qparams(w, fmt)
    return pack_weight(quantize_codes(w, fmt, scales, zeros), fmt, scales, zeros)


def quantize_codes(w: torch.Tensor, fmt: QuantFormat, scales: torch.Tensor, zeros: torch.Tensor | None) -> torch.Tensor:
    """uint8 codes [N, K] of W [N, K] rounded to nearest on given qparams (fp16 [N, G], uint8 [N, G]).

    The quantizers that choose codes otherwise (GPTQ) round each column through here too.
    """
    n, k = w.shape
    group = k if scales.shape[1] == 1 else fmt.effective_group(k)  # one group: a column, or a row per channel
    g = _grouped(w.detach().float(), group)
    z = float(fmt.sym_zero) if zeros is None else zeros.float().unsqueeze(2)
    q = torch.round(g / scales.float().unsqueeze(2)) + z
    return q.clamp(0, fmt.qmax).to(torch.uint8).reshape(n, -1)[:, :k]


def pack_weight(codes: torch.Tensor, fmt: QuantFormat, scales: torch.Tensor, zeros: torch.Tensor | None) -> QuantizedWeight:
    """The stored form of unpacked uint8 codes [N, K] and their qparams."""
    n, k = codes.shape
    if fmt.bits == 4:
        codes = pack_int4(codes)
    return QuantizedWeight(fmt, (n, k), codes.contiguous(), scales.contiguous(), zeros)


def unpacked_codes(qw: QuantizedWeight) -> torch.Tensor:
    """uint8 codes [N, K], whatever the packing."""
    if qw.format.bits == 4:
        return unpack_int4(qw.codes, qw.shape[1])
    return qw.codes


def dequantize(qw: QuantizedWeight, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """W_hat [N, K] = (q - z) * s, computed in float32 (exact for these small integers)."""
    n, k = qw.shape
    group = qw.group_size
    codes = unpacked_codes(qw).float()
    pad = (-k) % group
    if pad:
        codes = torch.nn.functional.pad(codes, (0, pad))
    codes = codes.reshape(n, -1, group)
    z = float(qw.format.sym_zero) if qw.zeros is None else qw.zeros.float().unsqueeze(2)
    w = (codes - z) * qw.scales.float().unsqueeze(2)
    return w.reshape(n, -1)[:, :k].to(dtype)


def fake_quantize(w: torch.Tensor, fmt: QuantFormat) -> torch.Tensor:
    """The weight as the model will see it under `fmt`, in w's dtype and shape."""
    if fmt.dtype == "fp16":
        return w.to(torch.float16).to(w.dtype)
    if fmt.dtype == "bf16":
        return w.to(torch.bfloat16).to(w.dtype)
    if fmt.is_gguf:
        return gguf_formats.fake_quantize(w, fmt.dtype)
    return dequantize(quantize(w, fmt), dtype=w.dtype)


def error_bound(qw: QuantizedWeight) -> torch.Tensor:
    """Per-element bound on |W - W_hat| for in-range RTN: half the stored scale, [N, K]."""
    n, k = qw.shape
    half = (qw.scales.float() / 2).repeat_interleave(qw.group_size, dim=1)
    return half[:, :k]
