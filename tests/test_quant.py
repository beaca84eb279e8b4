import pytest
import torch

from autoquant.formats import QuantFormat, all_formats
from autoquant.quant import (
    dequantize,
    error_bound,
    fake_quantize,
    pack_int4,
    quantize,
    unpack_int4,
    unpacked_codes,
)

INT_FORMATS = [f for f in all_formats() if not f.is_float]
ODD_SHAPES = [(1, 1), (3, 7), (7, 33), (17, 129), (64, 257), (5, 1000)]


@pytest.mark.parametrize("shape", ODD_SHAPES)
def test_pack_unpack_round_trip_is_bit_exact(shape):
    gen = torch.Generator().manual_seed(hash(shape) % 2**31)
    codes = torch.randint(0, 16, shape, dtype=torch.uint8, generator=gen)
    packed = pack_int4(codes)
    assert packed.shape == (shape[0], (shape[1] + 1) // 2)
    assert torch.equal(unpack_int4(packed, shape[1]), codes)


def test_packing_puts_even_k_in_the_low_nibble():
    codes = torch.tensor([[1, 2, 3]], dtype=torch.uint8)
    assert pack_int4(codes).tolist() == [[0x21, 0x03]]


@pytest.mark.parametrize("fmt", INT_FORMATS, ids=str)
@pytest.mark.parametrize("shape", ODD_SHAPES[1:])
def test_quantize_dequantize_error_within_half_a_step(fmt, shape):
    gen = torch.Generator().manual_seed(1)
    w = torch.randn(shape, generator=gen) * 0.02
    w[0, 0] = 0.3  # an outlier stretches its group's range
    qw = quantize(w, fmt)
    assert qw.nbytes == fmt.storage_bytes(*shape)
    err = (w - dequantize(qw)).abs()
    bound = error_bound(qw)
    assert torch.all(err <= bound * (1 + 1e-6) + 1e-12), float((err - bound).max())
    codes = unpacked_codes(qw)
    assert int(codes.max()) <= fmt.qmax


@pytest.mark.parametrize("fmt", INT_FORMATS, ids=str)
def test_zero_weights_are_exact(fmt):
    w = torch.zeros(4, 40)
    w[:, :3] = torch.tensor([0.5, -0.25, 0.125])
    deq = dequantize(quantize(w, fmt))
    assert torch.all(deq[:, 3:] == 0)


def test_error_shrinks_with_smaller_groups_and_more_bits():
    w = torch.randn(64, 512, generator=torch.Generator().manual_seed(2))
    def mse(text):
        return float(((w - fake_quantize(w, QuantFormat.parse(text))) ** 2).mean())
    assert mse("int8-pc-sym") < mse("int4-g32-sym") < mse("int4-g128-sym") < mse("int4-pc-sym")
    assert mse("int4-g128-asym") < mse("int4-g128-sym") * 1.05


def test_fake_quantize_keeps_dtype_and_shape():
    w = torch.randn(8, 20, dtype=torch.bfloat16)
    out = fake_quantize(w, QuantFormat.parse("int4-g32-asym"))
    assert out.dtype == torch.bfloat16 and out.shape == w.shape
    assert torch.equal(fake_quantize(w, QuantFormat("bf16")), w)


def test_quantize_refuses_non_matrices():
    with pytest.raises(ValueError):
        quantize(torch.randn(3, 4, 5), QuantFormat.parse("int8-pc-sym"))


@pytest.mark.parametrize("fmt", ["int4-g32-asym", "int8-pc-sym"])
def test_clone_is_equal_and_independent(fmt):
    qw = quantize(torch.randn(8, 64), QuantFormat.parse(fmt))
    c = qw.clone()
    assert torch.equal(dequantize(c), dequantize(qw)) and (c.zeros is None) == (qw.zeros is None)
    c.codes.zero_()
    assert qw.codes.any()
