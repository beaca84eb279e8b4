"""`QuantLinear`: a linear layer whose weight stays packed, as `autoquant.quant` writes it.

`forward` calls the `autoquant::wo_matmul` custom op (`ops`): the Triton kernels on CUDA, the
reference path (dequantize in float32, then matmul) elsewhere, so a quantized model works on any
device and `torch.compile(fullgraph=True)` captures it whole. Its `state_dict()` (codes, scales,
zeros, bias) is the exportable checkpoint: `QuantLinear(in, out, fmt, bias=...)` +
`load_state_dict` restores it.
"""

from __future__ import annotations

import torch
from torch import nn

from autoquant.formats import QuantFormat
from autoquant.kernels.ops import wo_matmul_op
from autoquant.quant import QuantizedWeight, quantize

_KERNEL_DTYPES = (torch.float16, torch.bfloat16)


class QuantLinear(nn.Module):
    """y = x @ dequant(W)^T + b with W [out_features, in_features] stored in `format`."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        fmt: QuantFormat | str,
        bias: bool = False,
        dtype: torch.dtype = torch.float16,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        fmt = QuantFormat.parse(fmt) if isinstance(fmt, str) else fmt
        if fmt.is_float:
            raise ValueError(f"QuantLinear stores integer formats; keep {fmt} layers as nn.Linear")
        if fmt.is_gguf:
            raise ValueError(f"{fmt} is a llama.cpp block format: no Triton kernel runs it; export it as GGUF")
        if dtype not in _KERNEL_DTYPES:
            raise ValueError(f"compute dtype must be fp16 or bf16, got {dtype}")
        self.in_features = in_features
        self.out_features = out_features
        self.format = fmt
        self.format_name = str(fmt)  # what the custom op takes (a plain string: no graph break)
        self.dtype = dtype  # activations are cast to it for the kernel; the output keeps x's dtype
        code_cols = in_features if fmt.bits == 8 else (in_features + 1) // 2
        g = fmt.groups(in_features)
        self.register_buffer("codes", torch.zeros(out_features, code_cols, dtype=torch.uint8, device=device))
        self.register_buffer("scales", torch.zeros(out_features, g, dtype=torch.float16, device=device))
        zeros = None if fmt.symmetric else torch.zeros(out_features, g, dtype=torch.uint8, device=device)
        self.register_buffer("zeros", zeros)
        # fp32 bias: exact for any source model; the kernel adds it in fp32 anyway.
        self.register_buffer("bias", torch.zeros(out_features, dtype=torch.float32, device=device) if bias else None)

    # ---- construction ---------------------------------------------------------
    @classmethod
    def from_quantized(
        cls, qw: QuantizedWeight, bias: torch.Tensor | None = None, dtype: torch.dtype = torch.float16
    ) -> QuantLinear:
        n, k = qw.shape
        device = qw.codes.device
        mod = cls(k, n, qw.format, bias=bias is not None, dtype=dtype, device=device)
        mod.codes.copy_(qw.codes)
        mod.scales.copy_(qw.scales)
        if qw.zeros is not None:
            mod.zeros.copy_(qw.zeros)
        if bias is not None:
            mod.bias.copy_(bias.detach())
        return mod

    @classmethod
    def from_weight(
        cls, weight: torch.Tensor, bias: torch.Tensor | None, fmt: QuantFormat | str, dtype: torch.dtype | None = None
    ) -> QuantLinear:
        """Quantize a weight given as [out, in] (transpose GPT-2 Conv1D weights first)."""
        fmt = QuantFormat.parse(fmt) if isinstance(fmt, str) else fmt
        if fmt.is_float:
            raise ValueError(f"QuantLinear stores integer formats; keep {fmt} layers as nn.Linear")
        if dtype is None:
            dtype = weight.dtype if weight.dtype in _KERNEL_DTYPES else torch.float16
        return cls.from_quantized(quantize(weight.detach(), fmt), bias, dtype)

    @classmethod
    def from_linear(cls, linear: nn.Linear, fmt: QuantFormat | str, dtype: torch.dtype | None = None) -> QuantLinear:
        """From an nn.Linear. Other layouts (GPT-2's Conv1D) go through `from_weight` with the
        weight as [out, in] (`autoquant.layers.linear_weight`): the kernels know no model code."""
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"from_linear takes an nn.Linear, not {type(linear).__name__}; use from_weight")
        return cls.from_weight(linear.weight, linear.bias, fmt, dtype)

    # ---- use ---------------------------------------------------------------------
    def quantized(self) -> QuantizedWeight:
        return QuantizedWeight(self.format, (self.out_features, self.in_features), self.codes, self.scales, self.zeros)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return wo_matmul_op(x, self.codes, self.scales, self.zeros, self.bias, self.format_name, self.out_features,
                            self.in_features, self.dtype)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, format={self.format}, "
            f"bias={self.bias is not None}, dtype={self.dtype}"
        )
