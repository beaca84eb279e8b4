from __future__ import annotations

import pytest
from hardware_fixtures import make_profile, shape  # noqa: F401  (shape: a fixture)

from autoquant.errors import UserError
from autoquant.hardware import latency as latency_mod
from autoquant.hardware import profile as profile_mod
from autoquant.hardware.latency import latency_model_for, plan_latency, rest_decode_seconds
from autoquant.hardware.profile import ProfileModel
from autoquant.hardware.roofline import RooflineModel
from autoquant.plan import Plan


def test_plan_latency_sums_layers_and_rest(shape) -> None:
    model = ProfileModel(make_profile(shape))
    plan = Plan.uniform("int4-g128-asym", list(shape.layers))
    lat = plan_latency(shape, plan, model, batch=1, context=128)
    per_layer = sum(model.layer_seconds(l.out_features, l.in_features, plan.format_of(l), 1) for l in shape.layers)
    assert lat.linear_decode_s == pytest.approx(per_layer)
    assert lat.decode_s == pytest.approx(per_layer + rest_decode_seconds(shape, model, 1, 128))
    assert lat.estimated is False and len(lat.layers) == len(shape.layers)
    # prefill: every layer on batch x context tokens, except lm_head (last position only)
    lm = [r for r in lat.layers if r.name == "lm_head"][0]
    assert lm.prefill_s == pytest.approx(model.layer_seconds(1000, 256, plan.format_of("lm_head"), 1))
    assert lat.prefill_s > lat.decode_s


def test_quantized_plan_decodes_faster_than_fp16(shape) -> None:
    model = ProfileModel(make_profile(shape))
    layers = list(shape.layers)
    fast = plan_latency(shape, Plan.uniform("int4-g128-asym", layers), model)
    slow = plan_latency(shape, Plan.uniform("fp16", layers), model)
    assert fast.linear_decode_s < slow.linear_decode_s


def test_estimated_when_anything_was_not_measured(shape) -> None:
    layers = list(shape.layers)
    plan = Plan.uniform("int4-g128-asym", layers)
    assert plan_latency(shape, plan, RooflineModel(latency_mod.get_spec("h100"))).estimated
    assert plan_latency(shape, Plan.uniform("int8-pc-sym", layers), ProfileModel(make_profile(shape))).estimated
    unfitted = ProfileModel(make_profile(shape, rest_measured=False))
    assert plan_latency(shape, plan, unfitted).estimated


def test_latency_model_for(tmp_path, monkeypatch, shape) -> None:
    monkeypatch.setattr(profile_mod, "CACHE_DIR", tmp_path)
    monkeypatch.setattr(latency_mod, "local_gpu_name", lambda: None)
    m = latency_model_for(None)
    assert isinstance(m, RooflineModel) and m.spec.name == "h100" and not m.measured
    assert latency_model_for("A100").spec.name == "a100"
    with pytest.raises(UserError, match="known"):
        latency_model_for("voodoo5")
    path = make_profile(shape).save(tmp_path / "mine.json")
    assert latency_model_for(str(path)).measured
    make_profile(shape).save()  # a saved H100 profile: measured beats datasheet
    assert isinstance(latency_model_for("h100"), ProfileModel)
    assert isinstance(latency_model_for("l4"), RooflineModel)
    monkeypatch.setattr(latency_mod, "local_gpu_name", lambda: "NVIDIA H100 80GB HBM3")
    assert isinstance(latency_model_for(None), ProfileModel)
    monkeypatch.setattr(latency_mod, "local_gpu_name", lambda: "NVIDIA L40S")
    assert latency_model_for(None).spec.name == "l40s"
