"""The proxy error: the output error trace(dW H dW^T) and its normalisations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from autoquant.formats import QuantFormat
from autoquant.quant import fake_quantize
from autoquant.sensitivity.proxy import NORMALISATIONS, ProxyParts, proxy_parts

INT8 = QuantFormat.parse("int8-pc-sym")
INT4 = QuantFormat.parse("int4-g32-asym")


def _setup(n: int = 48, k: int = 64, tokens: int = 200):
    g = torch.Generator().manual_seed(0)
    w = torch.randn(n, k, generator=g)
    x = torch.randn(tokens, k, generator=g) * torch.linspace(0.1, 3, k)  # uneven input channels
    h = (x.T @ x / tokens).double().numpy()
    grad_sq = torch.rand(n, generator=g).double().numpy()
    return w, x, h, grad_sq


def test_output_error_is_the_mean_square_output_change():
    w, x, h, gsq = _setup()
    parts = proxy_parts(w, h, gsq, [INT8, INT4])
    for fmt, p in parts.items():
        dy = x @ (w - fake_quantize(w, fmt)).T  # [tokens, n]
        assert p.output_error == pytest.approx(float(dy.pow(2).sum(1).mean()), rel=1e-4)
        assert p.output_energy == pytest.approx(float((x @ w.T).pow(2).sum(1).mean()), rel=1e-4)
        per_channel = dy.double().pow(2).mean(0).numpy()
        assert p.fisher_error == pytest.approx(0.5 * float((gsq * per_channel).sum()), rel=1e-4)


def test_fewer_bits_more_error_in_every_normalisation():
    w, _, h, gsq = _setup()
    parts = proxy_parts(w, h, gsq, [INT8, INT4])
    for norm in NORMALISATIONS:
        assert 0 < parts[INT8].value(norm) < parts[INT4].value(norm)


def test_inputs_that_are_never_seen_cost_nothing():
    """The point of weighting by H: error on input channels that are always zero is free."""
    w, _, _, gsq = _setup()
    h = np.zeros((64, 64))
    h[:32, :32] = np.eye(32)
    noisy = w.clone()
    noisy[:, 32:] += 0.5 * torch.randn(48, 32)  # big weights where the input is silent
    a = proxy_parts(w, h, gsq, [INT4])[INT4]
    b = proxy_parts(noisy, h, gsq, [INT4])[INT4]
    # per-group scales of the first 32 inputs are unchanged (g32), so the seen error is identical
    assert b.output_error == pytest.approx(a.output_error, rel=1e-6)


def test_normalisation_values_and_errors():
    p = ProxyParts(output_error=2.0, output_energy=8.0, fisher_error=0.1)
    assert p.value("output") == 2.0 and p.value("relative") == 0.25 and p.value("fisher") == 0.1
    with pytest.raises(ValueError, match="normalisation"):
        p.value("nope")
    with pytest.raises(ValueError, match="gradient"):
        ProxyParts(1.0, 1.0, None).value("fisher")
    assert ProxyParts(0.0, 0.0, None).value("relative") == 0.0


def test_profile_targets_give_awq_only_where_its_scale_folds():
    """awq divides the layer's input by s in the op before it: a norm (q/k/v, gate/up) or up_proj
    (down of a gated MLP). o_proj, lm_head and a GPT-2 MLP have none; 16-bit formats are rtn."""
    from transformers import GPT2Config, LlamaConfig

    from autoquant.layers import discover_layers
    from autoquant.models import build_meta_model
    from autoquant.sensitivity.profile import profile_targets
    from autoquant.space import parse_space

    space = parse_space({"name": "s", "formats": {"default": ["fp16", "int4-g32-asym"]},
                         "quantizers": {"default": ["rtn", "gptq", "awq"], "lm_head": ["rtn"]},
                         "lm_head": {"formats": ["fp16", "int8-pc-sym"], "tied": "search"}})
    llama = build_meta_model(LlamaConfig(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                                         num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False))
    t = profile_targets(discover_layers(llama), space, llama)
    assert t["model.layers.0.self_attn.q_proj"] == [("int4-g32-asym", q) for q in ("rtn", "gptq", "awq")]
    assert t["model.layers.0.mlp.down_proj"][-1] == ("int4-g32-asym", "awq")
    assert t["model.layers.0.self_attn.o_proj"] == [("int4-g32-asym", "rtn"), ("int4-g32-asym", "gptq")]
    assert t["lm_head"] == [("int8-pc-sym", "rtn")]
    gpt2 = build_meta_model(GPT2Config(vocab_size=256, n_embd=64, n_layer=1, n_head=4))
    t = profile_targets(discover_layers(gpt2), space, gpt2)
    assert not any(q == "awq" for vs in t.values() for _, q in vs)
