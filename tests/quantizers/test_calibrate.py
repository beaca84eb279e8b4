"""Whole-model quantization under calibrated plans (gptq, awq) on tiny random models."""

import pytest
import torch

from autoquant.apply import apply_plan, temporarily_quantized
from autoquant.errors import UserError
from autoquant.layers import discover_layers, linear_weight
from autoquant.plan import Plan
from autoquant.quality import QualityMeter
from autoquant.quant import dequantize
from autoquant.quantizers.awq import fold, fold_target
from autoquant.quantizers.calibrate import quantize_model
from tiny_models import tiny_model


def _windows(seed: int, n: int = 8, seq: int = 64) -> torch.Tensor:
    return torch.randint(0, 256, (n, seq), generator=torch.Generator().manual_seed(seed))


def test_stored_codes_are_what_the_model_computes_with():
    model = tiny_model("llama")
    plan = Plan.uniform("int4-g32-asym", discover_layers(model), quantizer="gptq")
    stored = quantize_model(model, plan.formats, plan.quantizers, _windows(0))
    assert stored.keys() == plan.formats.keys()
    for name, qw in stored.items():
        assert torch.equal(linear_weight(model.get_submodule(name)), dequantize(qw)), name


@pytest.mark.parametrize("quantizer", ["gptq", "awq"])
def test_packed_mode_matches_fake_mode(quantizer):
    ids = _windows(1, 2, 16)
    fake, packed = tiny_model("llama"), tiny_model("llama")
    plan = Plan.uniform("int4-g32-sym", discover_layers(fake), quantizer=quantizer)
    apply_plan(fake, plan, "fake", calibration=_windows(0))
    apply_plan(packed, plan, "packed", calibration=_windows(0))
    with torch.no_grad():
        assert torch.allclose(fake(ids).logits, packed(ids).logits.float(), atol=2e-2)


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_a_measurement_restores_every_parameter(arch):
    model = tiny_model(arch)
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    plan = Plan.uniform("int4-g32-asym", discover_layers(model), quantizer="awq")
    with temporarily_quantized(model, plan, _windows(0)):
        changed = any(not torch.equal(before[k], v) for k, v in model.state_dict().items() if "norm" in k)
    assert changed  # awq folded its scales into the norms for the measurement
    for k, v in model.state_dict().items():
        assert torch.equal(before[k], v), k


def test_folding_a_scale_leaves_the_float_model_unchanged():
    model = tiny_model("llama")
    ids = _windows(1, 2, 16)
    with torch.no_grad():
        ref = model(ids).logits
        for name in ("model.layers.0.self_attn.q_proj", "model.layers.0.mlp.down_proj"):
            target, kind = fold_target(model, name)
            k = linear_weight(model.get_submodule(name)).shape[1]
            s = torch.rand(k, generator=torch.Generator().manual_seed(0)) + 0.5
            fold(model, target, kind, s)
            readers = ("q_proj", "k_proj", "v_proj") if kind == "norm" else ("down_proj",)
            parent = name.rpartition(".")[0]
            for r in readers:
                model.get_submodule(f"{parent}.{r}").weight.mul_(s)
        assert torch.allclose(model(ids).logits, ref, atol=1e-4)


def test_gptq_and_awq_beat_rtn_on_held_out_tokens():
    model = tiny_model("llama")
    layers = discover_layers(model)
    meter = QualityMeter(model, _windows(2, 4), calibration=_windows(0, 16))
    kl = {q: meter.measure(Plan.uniform("int4-g32-sym", layers, quantizer=q)).kl for q in ("rtn", "gptq", "awq")}
    assert kl["gptq"] < kl["rtn"]  # random weights and tokens: a small margin (SmolLM2: bench/quantizers.py)
    assert kl["awq"] <= kl["rtn"] * 1.02  # awq's grid holds rtn (alpha = 0); held-out text may differ a little


def test_awq_refuses_a_layer_with_nothing_to_fold_into():
    model = tiny_model("gpt2")
    plan = Plan.uniform("int4-g32-sym", discover_layers(model), quantizer="awq")
    with pytest.raises(UserError, match="awq needs an op"):
        quantize_model(model, plan.formats, plan.quantizers, _windows(0))


def test_a_calibrated_plan_without_calibration_is_a_bug_not_a_silent_rtn():
    model = tiny_model("llama")
    plan = Plan.uniform("int4-g32-sym", discover_layers(model), quantizer="gptq")
    with pytest.raises(ValueError, match="calibration"):
        apply_plan(model, plan)


def test_each_block_is_calibrated_on_the_quantized_blocks_before_it(monkeypatch):
    import autoquant.quantizers.calibrate as calibrate

    seen = {}
    real_gptq = calibrate.gptq

    def recording_gptq(w, fmt, h, **kw):
        seen[len(seen)] = h.clone()
        return real_gptq(w, fmt, h, **kw)

    monkeypatch.setattr(calibrate, "gptq", recording_gptq)
    model, float_model = tiny_model("llama"), tiny_model("llama")
    plan = Plan.uniform("int4-g32-sym", discover_layers(model), quantizer="gptq")
    windows = _windows(0)
    quantize_model(model, plan.formats, plan.quantizers, windows)
    q_proj_1 = [n for n in plan.formats].index("model.layers.1.self_attn.q_proj")

    def input_hessian(m):
        hs = []
        handle = m.model.layers[1].self_attn.q_proj.register_forward_hook(
            lambda mod, args, out: hs.append(args[0].reshape(-1, args[0].shape[-1]).t() @ args[0].reshape(-1, args[0].shape[-1])))
        with torch.no_grad():
            for batch in windows.split(4):
                m(batch, use_cache=False)
        handle.remove()
        return sum(hs)

    quantized_inputs, float_inputs = input_hessian(model), input_hessian(float_model)
    assert torch.allclose(seen[q_proj_1], quantized_inputs, rtol=1e-4, atol=1e-3)
    assert not torch.allclose(seen[q_proj_1], float_inputs, rtol=1e-4, atol=1e-3)


def test_rtn_blocks_of_a_mixed_plan_are_plain_round_to_nearest():
    from autoquant.quant import fake_quantize

    model = tiny_model("llama")
    layers = discover_layers(model)
    plan = Plan.uniform("int4-g32-asym", layers)
    plan.quantizers = {"lm_head": "gptq", "model.layers.1.mlp.down_proj": "gptq"}
    original = {l.name: linear_weight(model.get_submodule(l.name)).detach().clone() for l in layers}
    stored = quantize_model(model, plan.formats, plan.quantizers, _windows(0))
    assert stored.keys() == plan.formats.keys()
    for name, w in original.items():
        same = torch.equal(linear_weight(model.get_submodule(name)), fake_quantize(w, plan.formats[name]))
        assert same == (name not in plan.quantizers), name
