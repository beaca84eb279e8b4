"""Measured plans shared by the searches of one model (autoquant.search.measured_plans)."""

from __future__ import annotations

from tiny_models import save_tiny_model

from autoquant.data import calibration_text, evaluation_text
from autoquant.formats import QuantFormat
from autoquant.memory import ModelShape
from autoquant.models import fingerprint
from autoquant.plan import Plan
from autoquant.progress import Progress
from autoquant.search.measured_plans import MeasuredPlans, measured_plans_path
from autoquant.search.run import LazyMeter

TOKENS = 256


def test_a_second_search_reuses_a_plan_measured_by_the_first_without_loading_the_model(tmp_path) -> None:
    source = save_tiny_model(tmp_path / "tiny")
    layers = list(ModelShape.from_source(source).layers)
    plan = Plan.uniform(QuantFormat.parse("int4-g128-asym"), layers, source.display)
    other = Plan.uniform(QuantFormat.parse("int8-pc-sym"), layers, source.display)
    text = evaluation_text(None, calibration_text())
    path = measured_plans_path(fingerprint(source), tmp_path / "cache")
    with Progress(False) as ui:
        first = LazyMeter(source, text, TOKENS, ui, MeasuredPlans(path, "cpu"))
        measured = first.measure(plan)
        assert first._meter is not None and measured["kl"] > 1e-5

        second = LazyMeter(source, text, TOKENS, ui, MeasuredPlans(path, "cpu"))  # another study, same model
        assert second.measure(plan) == measured
        assert second._meter is None  # read back: no model loaded, no forward pass
        # another plan, token count or device is measured afresh
        shared = MeasuredPlans(path, "cpu")
        assert shared.get(other, text.fingerprint, TOKENS) is None
        assert shared.get(plan, text.fingerprint, TOKENS * 2) is None
        assert MeasuredPlans(path, "cuda").get(plan, text.fingerprint, TOKENS) is None


def test_a_gptq_plan_is_measured_calibrated_and_keyed_by_its_quantizers(tmp_path) -> None:
    """The search measures a plan with gptq layers as `autoquant evaluate` and `export` quantize it
    (block by block on calibration text), and its quantizers key the measurement: the same
    formats by rtn are another plan."""
    from autoquant.quality import load_meter
    from autoquant.models import load_tokenizer
    from autoquant.quantizers.calibrate import calibration_windows

    source = save_tiny_model(tmp_path / "tiny")
    layers = list(ModelShape.from_source(source).layers)
    gptq = Plan.uniform(QuantFormat.parse("int4-g32-asym"), layers, source.display, "gptq")
    rtn = Plan.uniform(QuantFormat.parse("int4-g32-asym"), layers, source.display)
    text = evaluation_text(None, calibration_text())
    path = measured_plans_path(fingerprint(source), tmp_path / "cache")
    with Progress(False) as ui:
        measured = LazyMeter(source, text, TOKENS, ui, MeasuredPlans(path, "cpu")).measure(gptq)
    assert measured["quantizers"] == gptq.quantizer_digest != ""
    meter = load_meter(source, text, TOKENS)
    meter.calibration = calibration_windows(load_tokenizer(source))
    assert measured["kl"] == meter.measure(gptq).kl  # what evaluate reports, exactly
    assert measured["kl"] < meter.measure(rtn).kl
    shared = MeasuredPlans(path, "cpu")
    assert shared.get(gptq, text.fingerprint, TOKENS) == measured and shared.get(rtn, text.fingerprint, TOKENS) is None


def test_a_torn_line_is_skipped_and_the_next_append_starts_a_new_one(tmp_path, capsys) -> None:
    path = tmp_path / "m-measured-plans.jsonl"
    plan = Plan({"a": QuantFormat.parse("int8-pc-sym")}, "m")
    shared = MeasuredPlans(path, "cpu")
    shared.add(plan, "t", 64, {"kl": 0.5})
    with open(path, "a") as fh:
        fh.write('{"key": "cut sho')  # a kill mid-write
    again = MeasuredPlans(path, "cpu")
    assert "skipped 1 unreadable line" in capsys.readouterr().err
    again.add(Plan({"a": QuantFormat.parse("int4-g128-asym")}, "m"), "t", 64, {"kl": 0.9})
    third = MeasuredPlans(path, "cpu")
    assert len(third) == 2 and third.get(plan, "t", 64) == {"kl": 0.5}
