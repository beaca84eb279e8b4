"""Weight formats: one value type, its canonical string and its exact storage size.

A `QuantFormat` names how one linear layer's weight is stored:

    fp16, bf16                  unquantized, 2 bytes a weight
    int8-pc-sym                 int8, one scale per output channel, no zero-point
    int4-g128-asym              int4, one scale + one zero-point per 128 inputs of a row
    q4_0, q8_0, q5_1, ...       llama.cpp's block formats, laid out and rounded by the gguf
                                package (autoquant.gguf_formats); only GGUF files hold them

The storage layout these bytes describe is written by `autoquant.quant` and read
by the Triton kernels; `storage_bytes` is the one place that sizes it:

    codes   int8: uint8 [N, K];  int4: uint8 [N, ceil(K/2)], two codes a byte
    scales  fp16 [N, G]          G = 1 per channel, ceil(K / group) group-wise
    zeros   uint8 [N, G]         asymmetric only (symmetric uses the fixed 2^(bits-1))
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from autoquant import gguf_formats

FLOAT_DTYPES = ("fp16", "bf16")
INT_BITS = {"int8": 8, "int4": 4}
GROUP_SIZES = (32, 64, 128)
SCALE_BYTES = 2  # scales are stored as fp16
ZERO_BYTES = 1  # zero-points are stored as uint8 (not packed, so kernels read them directly)

_PATTERN = re.compile(r"^(int8|int4)-(pc|g(\d+))-(sym|asym)$")


@dataclass(frozen=True, order=True)
class QuantFormat:
    """How one weight matrix is stored. `group_size=None` means per output channel."""

    dtype: str  # "fp16" | "bf16" | "int8" | "int4" | a llama.cpp block format ("q4_0", ...)
    group_size: int | None = None
    symmetric: bool = True

    def __post_init__(self) -> None:
        if self.dtype in FLOAT_DTYPES:
            if self.group_size is not None or not self.symmetric:
                raise ValueError(f"{self.dtype} takes no group size or zero-point")
        elif self.dtype in INT_BITS:
            if self.group_size is not None and self.group_size <= 0:
                raise ValueError(f"group size must be positive, got {self.group_size}")
        elif gguf_formats.is_block_type(self.dtype):
            if self.group_size is not None or not self.symmetric:
                raise ValueError(f"{self.dtype} is a llama.cpp block format: its layout is fixed")
            if not gguf_formats.quantizable(self.dtype):
                raise ValueError(
                    f"{self.dtype}: the installed gguf {gguf_formats.gguf_version()} can read but not write it; "
                    f"llama.cpp formats it quantizes: {', '.join(gguf_formats.usable_types())}"
                )
        else:
            raise ValueError(f"unknown dtype {self.dtype!r}")

    # ---- identity -------------------------------------------------------
    @classmethod
    def parse(cls, text: str) -> QuantFormat:
        """Parse the canonical form; raises ValueError naming the accepted forms."""
        s = text.strip().lower()
        if s in FLOAT_DTYPES or gguf_formats.is_block_type(s):
            return cls(s)
        m = _PATTERN.match(s)
        if not m:
            raise ValueError(
                f"unknown format {text!r}; expected fp16, bf16, "
                "int8|int4-pc|g32|g64|g128-sym|asym (e.g. int4-g128-asym, int8-pc-sym) "
                "or a llama.cpp block format (q8_0, q4_0, ...)"
            )
        dtype, gran, group, sym = m.groups()
        if group and int(group) not in GROUP_SIZES:
            raise ValueError(f"unsupported group size in {text!r}; expected one of g32, g64, g128 or pc")
        return cls(dtype, int(group) if group else None, sym == "sym")

    def __str__(self) -> str:
        if self.is_float or self.is_gguf:
            return self.dtype
        gran = "pc" if self.group_size is None else f"g{self.group_size}"
        return f"{self.dtype}-{gran}-{'sym' if self.symmetric else 'asym'}"

    # ---- properties -------------------------------------------------------
    @property
    def is_float(self) -> bool:
        return self.dtype in FLOAT_DTYPES

    @property
    def is_gguf(self) -> bool:
        """A llama.cpp block format: the Triton kernels do not run it, GGUF files hold it."""
        return gguf_formats.is_block_type(self.dtype)

    @property
    def bits(self) -> int:
        """Bits of a code (scales not counted; `bits_per_weight` counts them)."""
        if self.is_gguf:
            return gguf_formats.nominal_bits(self.dtype)
        return 16 if self.is_float else INT_BITS[self.dtype]

    def fits(self, in_features: int) -> bool:
        """Whether a row of `in_features` can be stored: GGUF blocks cannot be padded."""
        return not self.is_gguf or gguf_formats.fits(self.dtype, in_features)

    @property
    def qmin(self) -> int:
        return 0

    @property
    def qmax(self) -> int:
        """Largest unsigned code; codes are stored offset-binary in [0, 2^bits - 1]."""
        return (1 << self.bits) - 1

    @property
    def sym_zero(self) -> int:
        """The implicit zero-point of symmetric formats."""
        return 1 << (self.bits - 1)

    def groups(self, in_features: int) -> int:
        """Scale groups per output row."""
        if self.is_float:
            return 0
        return math.ceil(in_features / self.effective_group(in_features))

    def effective_group(self, in_features: int) -> int:
        """Inputs sharing one scale: the group size (a GGUF block), or the whole row per channel."""
        if self.is_gguf:
            return gguf_formats.block_shape(self.dtype)[0]
        return in_features if self.group_size is None else self.group_size

    # ---- size: the one place it is computed --------------------------------
    def code_bytes(self, out_features: int, in_features: int) -> int:
        if self.is_float:
            return out_features * in_features * 2
        if self.bits == 8:
            return out_features * in_features
        return out_features * math.ceil(in_features / 2)

    def scale_bytes(self, out_features: int, in_features: int) -> int:
        return out_features * self.groups(in_features) * SCALE_BYTES

    def zero_bytes(self, out_features: int, in_features: int) -> int:
        if self.is_float or self.symmetric:
            return 0
        return out_features * self.groups(in_features) * ZERO_BYTES

    def storage_bytes(self, out_features: int, in_features: int) -> int:
        """Exact bytes of a weight [out, in] in this format: codes + scales + zero-points
        (for a GGUF block format: whole blocks of the gguf package's GGML_QUANT_SIZES)."""
        if self.is_gguf:
            return out_features * self.groups(in_features) * gguf_formats.block_shape(self.dtype)[1]
        return (
            self.code_bytes(out_features, in_features)
            + self.scale_bytes(out_features, in_features)
            + self.zero_bytes(out_features, in_features)
        )

    def bits_per_weight(self, out_features: int, in_features: int) -> float:
        return 8.0 * self.storage_bytes(out_features, in_features) / (out_features * in_features)


FP16 = QuantFormat("fp16")
BF16 = QuantFormat("bf16")


def all_formats() -> list[QuantFormat]:
    """Every format the product supports, float first."""
    out = [FP16, BF16]
    for dtype in ("int8", "int4"):
        for group in (None, *GROUP_SIZES):
            for sym in (True, False):
                out.append(QuantFormat(dtype, group, sym))
    return out
