"""SensitivityTable: estimated KL, calibration of the proxy, file form."""

from __future__ import annotations

import json
import math

import pytest

from autoquant.errors import UserError
from autoquant.formats import QuantFormat
from autoquant.sensitivity.table import KL_NOISE_FLOOR, SensitivityEntry, SensitivityTable, calibrate


def _table(**kw) -> SensitivityTable:
    listed = [
        SensitivityEntry("a", "int8-pc-sym", 1e-4, kl=3e-4, ppl_change=0.001),
        SensitivityEntry("a", "int4-g128-asym", 1e-2),
        SensitivityEntry("b", "int8-pc-sym", 2e-5),
        SensitivityEntry("b", "int4-g128-asym", 4e-3, kl=8e-3, ppl_change=0.02),
    ]
    entries = {e.key: e for e in listed}
    defaults = dict(model="m", model_fingerprint="f", calib_fingerprint="c", method_version="1", layers=["a", "b"],
                    formats=["int8-pc-sym", "int4-g128-asym"], entries=entries, proxy_to_kl=2.0, spearman=1.0,
                    roles={"a": "q", "b": "down"})
    return SensitivityTable(**(defaults | kw))


def test_estimated_kl_prefers_measured_then_calibrated_proxy():
    t = _table()
    assert t.estimated_kl("a", "int8-pc-sym") == 3e-4  # measured
    assert t.estimated_kl("a", QuantFormat.parse("int4-g128-asym")) == pytest.approx(2e-2)  # 2 x proxy
    assert t.estimated_kl("b", "int4-g128-asym") == 8e-3
    assert t.estimated_kl("a", "fp16") == 0.0 and t.estimated_kl("b", "bf16") == 0.0


def test_unknown_pair_names_what_was_profiled():
    with pytest.raises(KeyError, match="int4-g64-asym.*profiled formats: int8-pc-sym, int4-g128-asym"):
        _table().estimated_kl("a", "int4-g64-asym")


def test_best_quantizer_takes_the_least_estimated_kl_among_the_allowed():
    gptq = SensitivityEntry("a", "int4-g128-asym", 2e-3, quantizer="gptq")  # 4e-3 estimated, rtn's 2e-2
    awq = SensitivityEntry("a", "int4-g128-asym", 1e-3, kl=5e-3, quantizer="awq")  # measured 5e-3
    t = _table(entries=_table().entries | {gptq.key: gptq, awq.key: awq}, quantizers=["rtn", "gptq", "awq"])
    assert t.best_quantizer("a", "int4-g128-asym", ("rtn", "gptq", "awq")) == ("gptq", pytest.approx(4e-3))
    assert t.best_quantizer("a", "int4-g128-asym", ("rtn", "awq")) == ("awq", 5e-3)
    assert t.best_quantizer("a", "int4-g128-asym", ("rtn",)) == ("rtn", pytest.approx(2e-2))
    # not profiled for b: rtn; 16-bit: rtn at no cost
    assert t.best_quantizer("b", "int4-g128-asym", ("rtn", "gptq")) == ("rtn", 8e-3)
    assert t.best_quantizer("a", "fp16", ("rtn", "gptq")) == ("rtn", 0.0)


def test_each_quantizer_gets_its_own_scale():
    """gptq's proxy is optimistic (computed on the statistics it was fitted to): its measured
    entries fit their own scale; rtn's fit is rtn's alone."""
    rtn = [SensitivityEntry(f"l{i}", "int4-g128-asym", p, kl=2 * p) for i, p in enumerate([1e-3, 2e-3, 4e-3])]
    gptq = [SensitivityEntry(f"l{i}", "int4-g128-asym", p, kl=6 * p, quantizer="gptq") for i, p in enumerate([1e-4, 3e-4])]
    fit = calibrate(rtn + gptq)
    assert fit.proxy_to_kl == pytest.approx(2.0) and fit.proxy_to_kl_by_quantizer == {"gptq": pytest.approx(6.0)}
    assert fit.spearman == pytest.approx(1.0)  # ranked by the scaled proxies
    only_one = calibrate(rtn + gptq[:1] + [SensitivityEntry("x", "int8-pc-sym", 1e-3, quantizer="gptq")])
    assert only_one.proxy_to_kl_by_quantizer == {"gptq": pytest.approx(2.0)}  # too few: rtn's scale
    t = _table(entries={e.key: e for e in rtn[:1] + [SensitivityEntry("l9", "int4-g128-asym", 1e-3, quantizer="gptq")]},
               proxy_to_kl=2.0, proxy_to_kl_by_quantizer={"gptq": 6.0})
    assert t.estimated_kl("l9", "int4-g128-asym", "gptq") == pytest.approx(6e-3)


def test_version_1_tables_load_as_round_to_nearest(tmp_path):
    d = _table().to_dict()
    d["autoquant_sensitivity_version"] = 1
    for e in d["entries"]:
        del e["quantizer"]
    for key in ("quantizers", "quantizer_seconds", "proxy_to_kl_by_quantizer"):
        del d[key]
    path = tmp_path / "old.json"
    path.write_text(json.dumps(d))
    back = SensitivityTable.load(path)
    assert back.entries == _table().entries and back.quantizers == ["rtn"]


def test_layer_ranking_uses_worst_format():
    assert [name for name, _ in _table().layer_ranking()] == ["a", "b"]  # 2e-2 > 8e-3


def test_calibrate_fits_the_geometric_mean_ratio():
    entries = [SensitivityEntry(f"l{i}", "int4-g128-asym", p, kl=k)
               for i, (p, k) in enumerate([(1e-3, 2e-3), (1e-2, 8e-2), (1e-4, 1e-4)])]
    fit = calibrate(entries)
    assert fit.proxy_to_kl == pytest.approx(math.exp((math.log(2) + math.log(8) + math.log(1)) / 3))
    assert fit.spearman == pytest.approx(1.0) and fit.measured == 3


def test_calibrate_leaves_noise_floor_out_of_the_fit_and_keeps_prior_without_data():
    noisy = [SensitivityEntry("x", "int8-pc-sym", 1e-9, kl=KL_NOISE_FLOOR / 2),
             SensitivityEntry("y", "int8-pc-sym", 1e-3, kl=1e-3), SensitivityEntry("z", "int8-pc-sym", 2e-3, kl=2e-3)]
    assert calibrate(noisy).proxy_to_kl == pytest.approx(1.0)
    fit = calibrate([SensitivityEntry("x", "int8-pc-sym", 1e-3)], prior=0.7)
    assert fit.proxy_to_kl == 0.7 and fit.spearman is None and fit.measured == 0


def test_calibrate_reports_disagreement():
    entries = [SensitivityEntry(f"l{i}", "int8-pc-sym", p, kl=k) for i, (p, k) in enumerate([(1, 3e-3), (2, 2e-3), (3, 1e-3)])]
    assert calibrate(entries).spearman == pytest.approx(-1.0)


def test_save_load_roundtrip(tmp_path):
    t = _table(timings={"total": 1.5}, notes=["n"])
    path = t.save(tmp_path / "run" / "sensitivity.json")
    back = SensitivityTable.load(path)
    assert back == t
    assert json.loads(path.read_text())["autoquant_sensitivity_version"] == 2


def test_load_errors_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="not found.*autoquant profile"):
        SensitivityTable.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(UserError, match="not valid JSON"):
        SensitivityTable.load(bad)
    bad.write_text(json.dumps({"autoquant_sensitivity_version": 99}))
    with pytest.raises(UserError, match="version 99"):
        SensitivityTable.load(bad)
