"""GPTQ and AWQ on real SmolLM2 layers: calibrated on wikitext-2 validation, judged on test text."""

from __future__ import annotations

import pytest
import torch

from autoquant.data import calibration_text, evaluation_text, token_windows
from autoquant.formats import QuantFormat
from autoquant.layers import discover_layers, linear_weight
from autoquant.quant import dequantize, quantize
from autoquant.quantizers import fake_quantize_weight, gptq, output_error
from autoquant.sensitivity.statistics import collect_statistics

pytestmark = pytest.mark.slow
LAYERS = ["model.layers.3.self_attn.q_proj", "model.layers.3.mlp.down_proj"]


# Fails today (bench/results/quantizers-smollm2.json: whole-model GPTQ barely beats RTN): kept as
# the open criterion of issue 25 until the GPTQ calibration is fixed, not as a passing check.
@pytest.mark.xfail(reason="GPTQ does not yet cut SmolLM2's held-out output error to 0.8x RTN", strict=False)
@pytest.mark.parametrize("fmt", ["int4-g128-asym", "int4-g128-sym"])
def test_gptq_and_awq_cut_the_held_out_output_error_of_rtn(smollm2, fmt):
    _, model, tok = smollm2
    fmt = QuantFormat.parse(fmt)
    layers = [l for l in discover_layers(model) if l.name in LAYERS]
    calib = token_windows(tok, calibration_text(), 256, 1024)
    held_out = token_windows(tok, evaluation_text(None, calib=calibration_text()), 256, 512)
    h = collect_statistics(model, layers, calib, with_grads=False)
    h_test = collect_statistics(model, layers, held_out, with_grads=False)
    for name in LAYERS:
        w = linear_weight(model.get_submodule(name)).detach().float()
        hc, ht = torch.as_tensor(h.moment(name)), torch.as_tensor(h_test.moment(name))
        rtn = output_error(w, dequantize(quantize(w, fmt)), ht)
        assert output_error(w, dequantize(gptq(w, fmt, hc)), ht) < 0.8 * rtn, name
        assert output_error(w, fake_quantize_weight(w, fmt, "awq", hc), ht) < rtn, name
