"""llama.cpp's block formats, through the gguf package: names, block sizes and the arithmetic.

GGUF stores a weight row by row in blocks of `block_size` weights of `type_size` bytes each
(an fp16 scale, maybe an fp16 minimum, the packed codes): q4_0 is 32 weights in 18 bytes,
4.5 bits a weight; q8_0 is 32 in 34, 8.5 bits. The layout and the rounding are the gguf
package's own (`gguf.quants`, its numpy port of ggml's reference quantizers), so a weight
fake-quantized here is bit for bit what a GGUF file written with that package holds, and what
llama.cpp and transformers (which dequantizes through the same package) read back.

The formats are named as llama.cpp names its types, lower case: q8_0, q5_1, q5_0, q4_1, q4_0
and the k-quants q6_k ... q2_k. A format is usable when the installed gguf package can
quantize it (`quantizable`): gguf 0.19 quantizes q8_0, q5_x and q4_x and only dequantizes the
k-quants. This module works on names; `autoquant.formats.QuantFormat` wraps them.
"""

from __future__ import annotations

import re
from functools import cache

import numpy as np
import torch

_NAME = re.compile(r"^q([2-8])_(0|1|k)$")


def is_block_type(name: str) -> bool:
    """A llama.cpp block-format name (`q4_0`, `q6_k`), whether or not gguf can quantize it."""
    return bool(_NAME.match(name))


def ggml_type(name: str):
    """The gguf package's GGMLQuantizationType for a name (`q4_0` -> Q4_0)."""
    from gguf import GGMLQuantizationType

    try:
        return GGMLQuantizationType[name.upper()]
    except KeyError:
        raise ValueError(f"{name!r} is not a ggml type") from None


def block_shape(name: str) -> tuple[int, int]:
    """(weights a block, bytes a block), from the gguf package's GGML_QUANT_SIZES."""
    from gguf import GGML_QUANT_SIZES

    return GGML_QUANT_SIZES[ggml_type(name)]


def nominal_bits(name: str) -> int:
    """The bits of a code (q5_1 -> 5); the bytes, scales included, come from `block_shape`."""
    m = _NAME.match(name)
    if not m:
        raise ValueError(f"{name!r} is not a llama.cpp block format")
    return int(m.group(1))


@cache
def quantizable(name: str) -> bool:
    """Whether the installed gguf package can quantize this type (it raises NotImplementedError
    for types it only dequantizes); asked of the package rather than listed, so a newer gguf
    that gains a quantizer widens the choice without a change here."""
    from gguf import quants

    block, _ = block_shape(name)
    try:
        quants.quantize(np.zeros((1, block), dtype=np.float32), ggml_type(name))
    except NotImplementedError:
        return False
    return True


def gguf_version() -> str:
    from importlib.metadata import version

    return version("gguf")


def usable_types() -> list[str]:
    """Every block format the installed gguf can quantize, widest first."""
    names = [f"q{b}_{v}" for b in (8, 6, 5, 4, 3, 2) for v in ("0", "1", "k")]
    return [n for n in names if _known(n) and quantizable(n)]


def _known(name: str) -> bool:
    try:
        ggml_type(name)
    except ValueError:
        return False
    return True


def fits(name: str, in_features: int) -> bool:
    """GGUF cannot pad a row: its length must be a whole number of blocks."""
    return in_features % block_shape(name)[0] == 0


# ---- the arithmetic: the gguf package's, nothing re-derived ----------------------------------
def quantize(w: torch.Tensor, name: str) -> np.ndarray:
    """W [N, K] -> the GGUF bytes, uint8 [N, K / block x type_size], as a file stores them."""
    from gguf import quants

    if w.dim() != 2:
        raise ValueError(f"expected a 2-D weight, got shape {tuple(w.shape)}")
    if not fits(name, w.shape[1]):
        raise ValueError(f"{name} needs rows of whole {block_shape(name)[0]}-weight blocks, got {w.shape[1]}")
    return quants.quantize(w.detach().float().cpu().numpy(), ggml_type(name))


def dequantize(raw: np.ndarray, name: str) -> torch.Tensor:
    """GGUF bytes [N, bytes a row] -> float32 W_hat [N, K]."""
    from gguf import quants

    return torch.from_numpy(np.ascontiguousarray(quants.dequantize(raw, ggml_type(name))))


def fake_quantize(w: torch.Tensor, name: str) -> torch.Tensor:
    """The weight as llama.cpp will see it under `name`, in w's dtype, shape and device."""
    return dequantize(quantize(w, name), name).to(device=w.device, dtype=w.dtype)
