"""front.json through its schema: what the search writes reads back typed; an old, truncated or
malformed file is one RunFileError naming the file and the fix."""

from __future__ import annotations

import json
import pytest

from autoquant.runfiles import (FRONT_VERSION, FrontDocument, RunFileError, read_catalog, read_front, read_sensitivity,
                                write_front)
from autoquant.runs import compare_frame, find_runs, front_frame, plan_frame, plans_with_layers, scan_runs


def _front(runs, study="b549_6mb"):
    return runs / "tiny-llama" / study / "front.json"


def test_search_output_reads_back_typed_and_rewrites_identically(searched_runs, tmp_path):
    doc = read_front(_front(searched_runs))
    assert isinstance(doc, FrontDocument) and doc.model.endswith("tiny-llama")
    assert doc.recommended is not None and doc.recommended.recommended and doc.recommended.layers
    assert {l.name for l in doc.layers} == set(doc.recommended.layers)
    assert [b.label for b in doc.baselines][0] == "uniform fp16" and doc.baselines[0].measured.kl == 0.0
    again = write_front(tmp_path / "front.json", doc)
    assert json.loads(again.read_text()) == json.loads(_front(searched_runs).read_text())


def test_frames_of_a_real_run(searched_runs):
    runs = find_runs(searched_runs)
    assert sorted(r.name for r in runs) == ["tiny-llama / b549_6mb", "tiny-llama / b560mb"]
    run = next(r for r in runs if r.name.endswith("b549_6mb"))
    df = front_frame(run)
    assert df["recommended"].sum() == 1 and set(df["kind"]) >= {"baseline", "measured"}
    plans = plans_with_layers(run)
    label = run.result.recommended.label
    assert next(iter(plans)) == label
    table = read_sensitivity(run.sensitivity_path)
    pf = plan_frame(plans[label], run, table)
    # bytes per layer come from the formats' own arithmetic; their sum is the plan's linear bytes
    assert pf["bytes"].sum() == run.result.recommended.linear_bytes
    assert pf["estimated_kl"].notna().all()
    cmp = compare_frame(runs)
    assert sorted(cmp["memory_budget_GB"]) == pytest.approx([0.5496, 0.56])


def test_a_run_records_the_text_its_gptq_layers_were_calibrated_on(searched_runs):
    """`search --calib FILE`: the run, its plan.json and the plans the app exports name that file,
    so export calibrates the codes the search measured; a run without --calib names the default."""
    from autoquant.plan import Plan

    runs = {r.name.rpartition(" / ")[2]: r for r in find_runs(searched_runs)}
    assert runs["b549_6mb"].result.calibration.name == "wikitext-2 validation (embedded)"
    run = runs["b560mb"]
    calib = run.result.calibration
    assert calib.name == str(searched_runs.parent / "calib.txt") and len(calib.fingerprint) == 16
    plans = plans_with_layers(run)
    assert any(p.calibrated for p in plans.values())  # the default space lets gptq win somewhere
    for p in plans.values():
        assert p.calibration == (calib if p.quantizers else None)
    saved = Plan.load(run.path / "plan.json")
    assert saved.calibration == (calib if saved.calibrated else None)


@pytest.mark.parametrize(("mangle", "needle"), [
    (lambda t: t[: len(t) // 2], "truncated or not JSON"),
    (lambda t: json.dumps({**json.loads(t), "autoquant_search_version": 1}), f"reads version {FRONT_VERSION}: re-run"),
    (lambda t: json.dumps({**json.loads(t), "front": [{"label": "x"}]}), "malformed at front.0"),
    (lambda t: json.dumps({**json.loads(t), "batch": "one"}), "malformed at batch"),
    (lambda t: "[1, 2]", "not a search result"),
])
def test_bad_front_files_are_one_clear_error(searched_runs, tmp_path, mangle, needle):
    bad = tmp_path / "m" / "s" / "front.json"
    bad.parent.mkdir(parents=True)
    bad.write_text(mangle(_front(searched_runs).read_text()))
    with pytest.raises(RunFileError, match=needle) as e:
        read_front(bad)
    assert str(bad) in str(e.value) and "\n" not in str(e.value)
    scan = scan_runs(tmp_path)
    assert scan.runs == [] and scan.problems == [str(e.value)]


def test_bad_sensitivity_table_is_one_clear_error(searched_runs, tmp_path):
    good = json.loads((searched_runs / "tiny-llama" / "b560mb" / "sensitivity.json").read_text())
    old = tmp_path / "old.json"
    old.write_text(json.dumps({**good, "autoquant_sensitivity_version": 0}))
    with pytest.raises(RunFileError, match="unsupported sensitivity table version 0.*re-run `autoquant profile`"):
        read_sensitivity(old)
    cut = tmp_path / "cut.json"
    cut.write_text(json.dumps(good)[:100])
    with pytest.raises(RunFileError, match="truncated"):
        read_sensitivity(cut)


def test_catalog_reader(tmp_path):
    """The app reads the catalog through the schema the schedule writes it with (autoquant.catalog)."""
    from autoquant.catalog import Catalog, CatalogEntry, Latency, Quality, write_catalog

    entry = CatalogEntry(
        model="smollm2", hardware="h100", workload={"batch": 1, "context": 4096}, budgets={"memory": 10**9},
        space="default", trials=10, plan="p.json", front="f.json", quality=Quality(20.1, 0.4, 0.01),
        memory_bytes=10**8, latency=Latency(1.5, 20.0, True, "h100 roofline"), fingerprint="x",
        date="2026-12-01", feasible=True)
    path = write_catalog(Catalog(tmp_path, {"smollm2@h100": entry}))
    (t,) = read_catalog(path)
    assert (t.id, t.hardware, t.decode_ms, t.latency_estimated, t.kl) == ("smollm2@h100", "h100", 1.5, True, 0.01)
    path.write_text(json.dumps({"version": 2, "targets": {}}))
    with pytest.raises(RunFileError, match="unsupported version 2"):
        read_catalog(path)
    path.write_text(path.read_text()[:10])
    with pytest.raises(RunFileError, match="truncated or corrupt"):
        read_catalog(path)


def test_an_empty_runs_directory_has_no_runs(tmp_path):
    assert scan_runs(tmp_path / "nothing-here").runs == [] and scan_runs(tmp_path).problems == []
