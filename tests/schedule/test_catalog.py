"""The catalog file shared with the app: typed, versioned, written atomically; CHANGES.md lines."""

from __future__ import annotations

import json

import pytest

from autoquant.errors import UserError
from autoquant.catalog import Catalog, CatalogEntry, Latency, Quality, read_catalog, write_catalog
from autoquant.schedule.changes import compare


def _entry(**kw) -> CatalogEntry:
    base = dict(model="default", hardware="h100", workload={"batch": 1, "context": 4096},
                budgets={"memory": 820_000_000, "quality": None, "latency": None}, space="default", trials=300,
                plan="targets/x/plan.json", front="targets/x/front.json", quality=Quality(17.2, 0.02, 0.015),
                memory_bytes=810_000_000, latency=Latency(0.9, 120.0, True, "h100 roofline (estimated)"),
                fingerprint="abc", date="2026-12-05T01:00:00+00:00", feasible=True, inputs={"model": "m"})
    return CatalogEntry(**{**base, **kw})


def test_round_trip_is_exact_and_leaves_no_temp_file(tmp_path) -> None:
    cat = Catalog(tmp_path, {"default/h100/b1-c4096/memory=0.82GB": _entry()})
    path = write_catalog(cat)
    assert [p.name for p in tmp_path.iterdir()] == ["catalog.json"]
    doc = json.loads(path.read_text())
    assert doc["version"] == 1
    e = doc["targets"]["default/h100/b1-c4096/memory=0.82GB"]
    assert e["workload"] == {"batch": 1, "context": 4096} and e["latency"]["estimated"] is True
    assert set(e["quality"]) == {"ppl", "delta_ppl", "kl"} and e["feasible"] is True
    assert read_catalog(tmp_path).targets == cat.targets


def test_missing_catalog_is_empty_and_a_foreign_one_is_one_line(tmp_path) -> None:
    assert read_catalog(tmp_path / "none").targets == {}
    (tmp_path / "catalog.json").write_text(json.dumps({"version": 99, "targets": {}}))
    with pytest.raises(UserError, match="unsupported version 99"):
        read_catalog(tmp_path)


def test_changes_name_new_changed_and_infeasible_targets() -> None:
    old = _entry()
    assert compare("t", None, old, None, {"a": "fp16"}).kind == "new"
    smaller = _entry(memory_bytes=790_000_000, quality=Quality(17.5, 0.035, 0.02))
    change = compare("t", old, smaller, {"a": "fp16", "b": "fp16"}, {"a": "int8-pc-sym", "b": "fp16"})
    assert change.kind == "changed" and "1 of 2 layers" in change.text
    assert "0.810 -> 0.790 GB (-2.5%)" in change.text and "+2.00% -> +3.50%" in change.text
    gone = _entry(feasible=False, plan=None, quality=None, memory_bytes=None, latency=None, reason="no plan fits")
    assert compare("t", old, gone, {"a": "fp16"}, None).kind == "infeasible"
    assert compare("t", old, _entry(), {"a": "fp16"}, {"a": "fp16"}).kind == "unchanged"


def test_a_plan_that_changed_only_its_quantizers_changed() -> None:
    """A re-search that keeps every format but lets gptq take a layer has another plan, not the same."""
    from autoquant.layers import LinearLayer
    from autoquant.plan import Plan

    layers = [LinearLayer("a", 64, 64, "q", 0), LinearLayer("b", 64, 64, "down", 0)]
    before = Plan.uniform("int4-g128-asym", layers)
    after = Plan.uniform("int4-g128-asym", layers)
    after.quantizers = {"b": "gptq"}
    assert after.assignments() == {"a": "int4-g128-asym", "b": "int4-g128-asym (gptq)"}
    better = _entry(quality=Quality(17.1, 0.015, 0.012))
    change = compare("t", _entry(), better, before.assignments(), after.assignments())
    assert change.kind == "changed" and "plan changed (1 of 2 layers)" in change.text
