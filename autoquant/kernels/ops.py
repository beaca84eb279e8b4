"""`autoquant::wo_matmul`: the matmul as a torch.library custom op, so torch.compile sees it.

Registered with a fake (meta) implementation, `torch.compile(fullgraph=True)` traces a model of
`QuantLinear` layers as one graph with this op in it, instead of breaking the graph at every
layer. On CUDA the op runs the Triton paths (`wo_matmul_packed`, on x's device); on the CPU it
runs the reference path (dequantize in float32, then matmul), so a quantized model runs, and
compiles, on any device.

The format travels as its name (a string is a schema type; a `QuantFormat` is not). On CUDA x is
cast to `compute_dtype` (fp16/bf16) for the kernels; the output always has x's dtype.
"""

from __future__ import annotations

import functools

import torch

from autoquant.formats import QuantFormat
from autoquant.kernels.reference import reference_matmul
from autoquant.quant import QuantizedWeight


@functools.lru_cache(maxsize=None)
def _format(name: str) -> QuantFormat:
    return QuantFormat.parse(name)


@torch.library.custom_op("autoquant::wo_matmul", mutates_args=(), device_types="cuda")
def wo_matmul_op(x: torch.Tensor, codes: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor | None,
                 bias: torch.Tensor | None, fmt: str, out_features: int, in_features: int,
                 compute_dtype: torch.dtype) -> torch.Tensor:
    """`x @ dequant(W)^T (+ bias)` with W stored as `autoquant.quant` writes it; [..., K] -> [..., N]."""
    from autoquant.kernels.wo_matmul import wo_matmul_packed  # at call time: tests reload the kernel modules

    xin = x if x.dtype == compute_dtype else x.to(compute_dtype)
    y = wo_matmul_packed(xin, codes, scales, zeros, _format(fmt), out_features, in_features, bias)
    return y if y.dtype == x.dtype else y.to(x.dtype)


@wo_matmul_op.register_kernel("cpu")
def _cpu(x: torch.Tensor, codes: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor | None,
         bias: torch.Tensor | None, fmt: str, out_features: int, in_features: int,
         compute_dtype: torch.dtype) -> torch.Tensor:
    qw = QuantizedWeight(_format(fmt), (out_features, in_features), codes, scales, zeros)
    return reference_matmul(x, qw, bias)


@wo_matmul_op.register_fake
def _fake(x: torch.Tensor, codes: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor | None,
          bias: torch.Tensor | None, fmt: str, out_features: int, in_features: int,
          compute_dtype: torch.dtype) -> torch.Tensor:
    torch._check(x.shape[-1] == in_features, lambda: f"x has {x.shape[-1]} features, the weight {in_features}")
    return x.new_empty((*x.shape[:-1], out_features))
