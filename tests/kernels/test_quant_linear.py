"""QuantLinear: construction from the three sources, the packed checkpoint, the CPU path."""

from __future__ import annotations

import kernel_env  # noqa: F401  (interpreter setup before `kernels` is imported)
import pytest
import torch
from torch import nn

from autoquant.formats import QuantFormat
from autoquant.quant import dequantize, quantize
from autoquant.kernels import QuantLinear, reference_matmul

_gen = torch.Generator().manual_seed(7)


def _linear(n: int, k: int, bias: bool = True) -> nn.Linear:
    lin = nn.Linear(k, n, bias=bias)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(n, k, generator=_gen) * 0.05)
        if bias:
            lin.bias.copy_(torch.randn(n, generator=_gen))
    return lin


@pytest.mark.parametrize("fmt", ["int4-g32-asym", "int8-pc-sym", "int4-pc-sym"])
def test_from_linear_matches_dequantized_reference(fmt: str) -> None:
    lin = _linear(20, 70)
    q = QuantLinear.from_linear(lin, QuantFormat.parse(fmt))
    x = torch.randn(2, 5, 70, generator=_gen)
    y = q(x)
    w = dequantize(quantize(lin.weight.detach(), QuantFormat.parse(fmt)), torch.float64)
    ref = x.double() @ w.t() + lin.bias.double()
    assert y.shape == (2, 5, 20) and y.dtype == x.dtype
    assert torch.allclose(y.double(), ref, rtol=1e-4, atol=1e-4)


def test_buffers_are_the_packed_layout() -> None:
    q = QuantLinear.from_linear(_linear(6, 33), "int4-g32-asym")
    sd = q.state_dict()
    assert set(sd) == {"codes", "scales", "zeros", "bias"}
    assert sd["codes"].shape == (6, 17) and sd["codes"].dtype == torch.uint8
    assert sd["scales"].shape == (6, 2) and sd["scales"].dtype == torch.float16
    assert sd["zeros"].shape == (6, 2) and sd["zeros"].dtype == torch.uint8
    sym = QuantLinear.from_linear(_linear(6, 33, bias=False), "int8-pc-sym")
    assert set(sym.state_dict()) == {"codes", "scales"} and sym.zeros is None and sym.bias is None
    assert str(sym.format) == "int8-pc-sym"


def test_state_dict_round_trip() -> None:
    q = QuantLinear.from_linear(_linear(12, 64), "int4-g64-sym")
    fresh = QuantLinear(64, 12, "int4-g64-sym", bias=True)
    fresh.load_state_dict(q.state_dict())
    x = torch.randn(3, 64, generator=_gen)
    assert torch.equal(fresh(x), q(x))


def test_from_weight_accepts_a_conv1d_style_weight_transposed() -> None:
    w_in_out = torch.randn(40, 24, generator=_gen)  # GPT-2 Conv1D stores [in, out]
    q = QuantLinear.from_weight(w_in_out.t(), None, "int8-pc-asym")
    assert (q.in_features, q.out_features) == (40, 24)
    qw = quantize(w_in_out.t(), QuantFormat.parse("int8-pc-asym"))
    assert torch.equal(q.codes, qw.codes) and torch.equal(q.zeros, qw.zeros)


def test_from_quantized_keeps_data_and_dtype() -> None:
    qw = quantize(torch.randn(10, 48, generator=_gen), QuantFormat.parse("int4-g32-sym"))
    q = QuantLinear.from_quantized(qw, None, torch.bfloat16)
    assert q.dtype == torch.bfloat16 and torch.equal(q.codes, qw.codes)
    x = torch.randn(4, 48, generator=_gen).to(torch.bfloat16)
    assert torch.equal(q(x), reference_matmul(x, qw))


def test_float_formats_are_refused() -> None:
    with pytest.raises(ValueError, match="nn.Linear"):
        QuantLinear.from_linear(_linear(4, 16), "fp16")
