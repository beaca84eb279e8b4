"""GPTQ against a dense reimplementation of the published algorithm (Frantar et al. 2022, Alg. 1
without lazy batches or Cholesky: the plain OBS update with an explicitly maintained H^-1)."""

import pytest
import torch

from autoquant.formats import QuantFormat
from autoquant.quant import choose_qparams, dequantize, quantize, quantize_codes, unpacked_codes
from autoquant.quantizers.awq import output_error
from autoquant.quantizers.gptq import DAMP, gptq


def _layer(n=48, k=256, tokens=2048, seed=0):
    """A weight and the Hessian of correlated inputs with uneven channel scales, as in LLMs."""
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(k, k, generator=g) / k**0.5 + torch.eye(k)
    x = (torch.randn(tokens, k, generator=g) @ mix) * torch.rand(k, generator=g).mul(4).add(0.1)
    return torch.randn(n, k, generator=g) * 0.02, x.t() @ x


def _dense_reference(w, fmt, h, damp=DAMP):
    """Column by column: quantize, spread (w - q) / Hinv[i,i] over the later columns along
    Hinv[i, i+1:], then remove i from Hinv (Gaussian elimination); qparams at each group's start."""
    w = w.double().clone()
    h = h.double() + damp * torch.diag(h.double()).mean() * torch.eye(h.shape[0], dtype=torch.float64)
    hinv = torch.linalg.inv(h)
    n, k = w.shape
    group = fmt.effective_group(k)
    codes = torch.zeros(n, k, dtype=torch.uint8)
    for i in range(k):
        if i % group == 0:
            s, z = choose_qparams(w[:, i : i + group], fmt)
        q = quantize_codes(w[:, i : i + 1], fmt, s, z)
        codes[:, i] = q[:, 0]
        zf = float(fmt.sym_zero) if z is None else z.double()
        deq = ((q.double() - zf) * s.double())[:, 0]
        e = (w[:, i] - deq) / hinv[i, i]
        w[:, i + 1 :] -= e.unsqueeze(1) * hinv[i, i + 1 :].unsqueeze(0)
        hinv = hinv - torch.outer(hinv[:, i], hinv[i, :]) / hinv[i, i]
    return codes


@pytest.mark.parametrize("fmt", ["int4-g32-asym", "int4-g64-sym"])
def test_gptq_matches_the_dense_algorithm(fmt):
    fmt = QuantFormat.parse(fmt)
    w, h = _layer()
    ours = unpacked_codes(gptq(w, fmt, h, block=64))
    ref = _dense_reference(w, fmt, h)
    # float32 lazy blocks vs float64 elimination: a rounding tie may flip a code, rarely
    assert (ours == ref).float().mean() > 0.995


@pytest.mark.parametrize("fmt", ["int4-g32-asym", "int4-g128-sym", "int8-pc-sym", "int4-pc-asym"])
@pytest.mark.parametrize("act_order", [False, True])
def test_uncorrelated_inputs_give_exactly_round_to_nearest(fmt, act_order):
    """H = I: no error to spread, so every code is rtn's, bit for bit: the column loop rounds with
    quantize_codes' arithmetic (it is written inline there, for speed)."""
    fmt = QuantFormat.parse(fmt)
    w, _ = _layer(seed=2)
    ours, rtn = gptq(w, fmt, torch.eye(w.shape[1]), act_order=act_order), quantize(w, fmt)
    assert torch.equal(unpacked_codes(ours), unpacked_codes(rtn)) and torch.equal(ours.scales, rtn.scales)
    assert ours.zeros is None if rtn.zeros is None else torch.equal(ours.zeros, rtn.zeros)


@pytest.mark.parametrize("fmt", ["int4-g32-asym", "int4-g32-sym", "int8-pc-sym", "int4-pc-asym"])
@pytest.mark.parametrize("act_order", [False, True])
def test_gptq_output_error_is_well_under_rtn(fmt, act_order):
    fmt = QuantFormat.parse(fmt)
    w, h = _layer(seed=1)
    qw = gptq(w, fmt, h, act_order=act_order)
    assert qw.codes.shape == quantize(w, fmt).codes.shape and qw.scales.shape == quantize(w, fmt).scales.shape
    rtn = output_error(w, dequantize(quantize(w, fmt)), h)
    assert output_error(w, dequantize(qw), h) < 0.7 * rtn


def test_dead_inputs_do_not_break_the_factorisation():
    w, h = _layer(k=128)
    h[5, :] = h[:, 5] = 0.0  # an input that never fires
    qw = gptq(w, QuantFormat.parse("int4-g32-asym"), h)
    assert torch.isfinite(dequantize(qw)).all()
