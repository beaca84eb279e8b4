"""The calibration pass: input moments, shared inputs, Fisher diagonals, merging."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from autoquant.layers import discover_layers, linear_weight
from autoquant.sensitivity.statistics import collect_statistics
from tiny_models import tiny_model


def _windows(n: int = 2, seq: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, seq), generator=torch.Generator().manual_seed(seed))


def _captured_inputs(model, name: str, windows: torch.Tensor) -> torch.Tensor:
    seen = []
    handle = model.get_submodule(name).register_forward_pre_hook(lambda m, a: seen.append(a[0].detach().reshape(-1, a[0].shape[-1])))
    with torch.no_grad():
        for w in windows.split(1):
            model(w)
    handle.remove()
    return torch.cat(seen).double()


def test_input_moment_is_xtx_over_n():
    model = tiny_model("llama")
    layers = discover_layers(model)
    windows = _windows()
    stats = collect_statistics(model, layers, windows, with_grads=False)
    for name in ("model.layers.0.self_attn.o_proj", "model.layers.1.mlp.down_proj", "lm_head"):
        x = _captured_inputs(model, name, windows)
        np.testing.assert_allclose(stats.moment(name), (x.T @ x / x.shape[0]).numpy(), rtol=1e-4, atol=1e-6)
    assert stats.tokens == windows.numel()


def test_layers_reading_one_tensor_share_one_moment():
    model = tiny_model("llama")
    stats = collect_statistics(model, discover_layers(model), _windows(), with_grads=False)
    a = "model.layers.0.self_attn."
    m = "model.layers.1.mlp."
    assert stats.input_of[a + "k_proj"] == stats.input_of[a + "q_proj"] == stats.input_of[a + "v_proj"]
    assert stats.input_of[m + "up_proj"] == stats.input_of[m + "gate_proj"]
    assert stats.input_of[a + "o_proj"] == a + "o_proj"  # reads a different tensor
    assert stats.input_of[m + "down_proj"] == m + "down_proj"
    # 2 blocks x (attn in, o in, mlp in, down in) + lm_head: stored once each
    assert len(stats.input_sums) == 9


def test_conv1d_inputs_and_gradients():
    """GPT-2's Conv1D: moments sized by the input features, gradients by the outputs."""
    model = tiny_model("gpt2")
    layers = discover_layers(model)
    stats = collect_statistics(model, layers, _windows())
    for layer in layers:
        w = linear_weight(model.get_submodule(layer.name))
        assert stats.moment(layer.name).shape == (w.shape[1], w.shape[1])
        assert stats.grad_sq(layer.name).shape == (w.shape[0],)


def test_fisher_diagonal_is_mean_square_output_gradient():
    """G of lm_head: mean over positions of (softmax - onehot(sample))^2, with the sampled labels."""
    model = tiny_model("llama")
    layers = [l for l in discover_layers(model) if l.name == "lm_head"]
    windows = _windows(n=1)
    stats = collect_statistics(model, layers, windows, seed=3)
    with torch.no_grad():
        logits = model(windows).logits[0].float()
    p = logits.softmax(-1)
    y = torch.multinomial(p, 1, generator=torch.Generator().manual_seed(3)).squeeze(1)
    g = p.clone()
    g[torch.arange(len(y)), y] -= 1
    np.testing.assert_allclose(stats.grad_sq("lm_head"), (g.double() ** 2).mean(0).numpy(), rtol=1e-3, atol=1e-9)


def test_merge_equals_one_pass_over_all_windows():
    model = tiny_model("llama")
    layers = discover_layers(model)
    windows = _windows(n=4)
    whole = collect_statistics(model, layers, windows, with_grads=False)
    merged = collect_statistics(model, layers, windows[:1], with_grads=False).merge(
        collect_statistics(model, layers, windows[1:], with_grads=False)
    )
    assert merged.tokens == whole.tokens
    for name in whole.input_of:
        np.testing.assert_allclose(merged.moment(name), whole.moment(name), rtol=1e-5, atol=1e-7)


def test_statistics_leave_the_model_as_found():
    model = tiny_model("llama")
    model.lm_head.weight.requires_grad_(True)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    collect_statistics(model, discover_layers(model), _windows())
    assert model.lm_head.weight.requires_grad and model.lm_head.weight.grad is None
    assert all(torch.equal(before[n], p) for n, p in model.named_parameters())
    assert not model._forward_pre_hooks and all(not m._forward_pre_hooks for m in model.modules())


@pytest.mark.parametrize("arch", ["qwen2", "mistral"])
def test_every_layer_gets_statistics(arch):
    model = tiny_model(arch)
    layers = discover_layers(model)
    stats = collect_statistics(model, layers, _windows(n=1))
    assert set(stats.input_of) == {l.name for l in layers}
    assert all((stats.grad_sq(l.name) > 0).all() for l in layers)
