import json

import pytest

from autoquant.errors import UserError
from autoquant.formats import QuantFormat
from autoquant.layers import discover_layers
from autoquant.plan import PLAN_VERSION, Plan, resolve_plan
from tiny_models import tiny_model


@pytest.fixture
def layers():
    return discover_layers(tiny_model("llama"))


def test_save_load_round_trip(tmp_path, layers):
    plan = Plan.uniform("int4-g128-asym", layers, model="tiny")
    plan.formats[layers[-1].name] = QuantFormat.parse("int8-pc-sym")
    plan.metadata["note"] = "mixed"
    path = plan.save(tmp_path / "p" / "plan.json")
    loaded = Plan.load(path)
    assert loaded.formats == plan.formats and loaded.metadata == plan.metadata
    assert json.loads(path.read_text())["autoquant_plan_version"] == PLAN_VERSION
    assert loaded.summary() == "int4-g128-asym x14, int8-pc-sym x1"


def test_resolve_uniform_or_file(tmp_path, layers):
    assert set(resolve_plan("int8-pc-sym", layers).formats.values()) == {QuantFormat.parse("int8-pc-sym")}
    path = Plan.uniform("fp16", layers).save(tmp_path / "plan.json")
    assert resolve_plan(str(path), layers).formats[layers[0].name].is_float


@pytest.mark.parametrize(
    "content,match",
    [("{", "not valid JSON"), ('{"autoquant_plan_version": 99, "layers": {}}', "version"),
     ('{"autoquant_plan_version": 1, "layers": {"x": "int9"}}', "malformed")],
)
def test_bad_plan_files_are_user_errors(tmp_path, layers, content, match):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(UserError, match=match):
        resolve_plan(str(path), layers)


def test_plan_for_another_model_is_refused(tmp_path, layers):
    other = discover_layers(tiny_model("gpt2"))
    path = Plan.uniform("fp16", other).save(tmp_path / "gpt2.json")
    with pytest.raises(UserError, match="does not match"):
        resolve_plan(str(path), layers)
    with pytest.raises(UserError, match="not found"):
        resolve_plan(str(tmp_path / "missing.json"), layers)


def test_a_version_1_plan_loads_as_round_to_nearest(tmp_path):
    import json

    from autoquant.layers import discover_layers
    from tiny_models import tiny_model

    layers = discover_layers(tiny_model("llama"))
    path = tmp_path / "v1.json"
    path.write_text(json.dumps({"autoquant_plan_version": 1, "model": "m", "metadata": {},
                                "layers": {l.name: "int4-g32-asym" for l in layers}}))
    plan = Plan.load(path)
    assert not plan.calibrated and {plan.quantizer_of(l) for l in layers} == {"rtn"}


def test_quantizers_round_trip_per_layer(tmp_path):
    from autoquant.layers import discover_layers
    from tiny_models import tiny_model

    layers = discover_layers(tiny_model("llama"))
    plan = Plan.uniform("int4-g32-asym", layers, quantizer="awq")
    # awq folds its scale into the op before q/k/v, gate/up and down only
    assert {l.role for l in layers if plan.quantizer_of(l) == "rtn"} == {"o", "lm_head"}
    back = Plan.load(plan.save(tmp_path / "p.json"))
    assert back.quantizers == plan.quantizers and back.calibrated
    assert "(awq)" in back.summary()


def test_bad_quantizers_are_user_errors(tmp_path):
    from autoquant.layers import discover_layers
    from autoquant.plan import resolve_plan
    from tiny_models import tiny_model

    layers = discover_layers(tiny_model("llama"))
    with pytest.raises(UserError, match="unknown quantizer"):
        resolve_plan("int4-g32-asym", layers, quantizer="hqq")
    with pytest.raises(UserError, match="integer formats"):
        resolve_plan("fp16", layers, quantizer="gptq")
    path = Plan.uniform("int4-g32-asym", layers).save(tmp_path / "p.json")
    with pytest.raises(UserError, match="plan file names each layer"):
        resolve_plan(str(path), layers, quantizer="gptq")
    d = Plan.uniform("int4-g32-asym", layers).to_dict()
    d["quantizers"] = {layers[0].name: "nope"}
    with pytest.raises(UserError, match="malformed"):
        Plan.from_dict(d)



def test_a_plan_records_its_calibration_text_and_finds_it_again(tmp_path, layers):
    from dataclasses import replace

    from autoquant.data import calibration_text, evaluation_text
    from autoquant.plan import calibration_source

    plan = Plan.uniform("int4-g32-sym", layers, quantizer="gptq")
    default = calibration_text()
    assert calibration_source(plan) == (default, None)  # nothing recorded: wikitext-2 validation

    f = tmp_path / "calib.txt"
    f.write_text(evaluation_text().text[:20_000])
    plan.calibration = calibration_text(str(f)).ref
    assert plan.calibration.name == str(f.resolve())  # found again from any working directory
    again = Plan.from_dict(json.loads(json.dumps(plan.to_dict())))
    assert again.calibration == plan.calibration and again.quantizer_digest == plan.quantizer_digest
    assert plan.quantizer_digest != replace(plan, calibration=default.ref).quantizer_digest  # other text, other key
    assert calibration_source(again)[0].fingerprint == plan.calibration.fingerprint

    other = tmp_path / "other.txt"
    other.write_text(default.text[:20_000])
    src, note = calibration_source(again, str(other))
    assert src.name == str(other) and "calibrating on" in note  # an explicit --calib wins, and says so
    f.unlink()
    with pytest.raises(UserError, match="not there as it was"):
        calibration_source(again)
    rtn = Plan.uniform("int4-g32-sym", layers)
    rtn.calibration = plan.calibration
    assert "calibration" not in rtn.to_dict() and calibration_source(rtn) == (default, None)  # nothing to calibrate
