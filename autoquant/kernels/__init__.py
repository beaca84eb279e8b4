"""Triton kernels for weight-only quantized matmul, and the module that uses them.

    from autoquant.kernels import QuantLinear, wo_matmul
    layer = QuantLinear.from_linear(linear, QuantFormat.parse("int4-g128-asym"))
    y = layer(x)                         # CUDA: Triton kernels; CPU: reference path
    y = wo_matmul(x, quantize(w, fmt))   # the functional entry point
"""

from autoquant.kernels.quant_linear import QuantLinear, reference_matmul
from autoquant.kernels.wo_matmul import (
    SMALL_M_MAX,
    KernelConfig,
    decode_pdl,
    wo_matmul,
    wo_matmul_packed,
)

__all__ = ["SMALL_M_MAX", "KernelConfig", "QuantLinear", "decode_pdl", "reference_matmul", "wo_matmul", "wo_matmul_packed"]
