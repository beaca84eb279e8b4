"""The app's data layer (autoquant.runs) and the Streamlit app itself, headless (AppTest)."""

import json
from pathlib import Path

import pytest

from autoquant.layers import discover_layers
from autoquant.models import ModelSource
from autoquant.runs import (find_runs, front_frame, model_slug, plan_frame, plans_with_layers, search_run_dir,
                            sensitivity_frame)
from autoquant.sensitivity.table import SensitivityEntry, SensitivityTable
from tiny_models import tiny_model

APP = Path(__file__).parent.parent / "app.py"


def _row(label, memory, bpw, kl=None, layers=None, recommended=False, trial=None):
    row = {"label": label, "trial": trial, "memory_bytes": memory, "linear_bytes": memory // 2,
           "bits_per_weight": bpw, "decode_s": 1e-4 * bpw, "prefill_s": 0.01 * bpw, "latency_estimated": True,
           "proxy_kl": 0.9 * kl if kl is not None else 0.01, "summary": "mixed", "recommended": recommended,
           "measured": None if kl is None else {"perplexity": 30 + 10 * kl, "ppl_change": kl / 3, "kl": kl,
                                                 "tokens": 4096, "text": "wikitext-2 test"}}
    if layers is not None:
        row["layers"] = layers
    return row


@pytest.fixture
def runs_dir(tmp_path):
    """A runs directory shaped like the one `autoquant search` writes, for a tiny Llama."""
    layers = discover_layers(tiny_model("llama"))
    names = [l.name for l in layers]
    mixed = {n: ("int4-g128-asym" if i % 2 else "int8-pc-sym") for i, n in enumerate(names)}
    run = tmp_path / "runs" / "tiny-llama" / "default"
    run.mkdir(parents=True)
    rec = _row("trial 7", 4_000_000, 6.1, kl=0.02, layers=mixed, recommended=True, trial=7)
    front = {
        "autoquant_search_version": 1, "model": "tiny-llama", "model_spec": None, "hardware": "h100 roofline",
        "latency_estimated": True, "batch": 1, "context": 128, "budgets": {"memory_bytes": 5_000_000},
        "study": {"name": "default", "trials": 300},
        "baselines": [_row("fp16", 8_000_000, 16, kl=0.0), _row("int4-g128-asym", 3_000_000, 4.2, kl=0.5)],
        "front": [rec, _row("trial 3", 3_500_000, 5.0), _row("trial 9", 5_000_000, 8.0, kl=0.004, layers=dict.fromkeys(names, "int8-pc-sym"), trial=9)],
        "recommended": rec, "notes": ["memory is estimated by the memory model"],
    }
    (run / "front.json").write_text(json.dumps(front))
    entries = {}
    for i, n in enumerate(names):
        for f in ("int8-pc-sym", "int4-g128-asym"):
            proxy = (i + 1) * (10 if f.startswith("int4") else 1) * 1e-4
            entries[(n, f)] = SensitivityEntry(n, f, proxy, kl=proxy * 2 if i < 3 else None)
    SensitivityTable("tiny-llama", "fp", "calib", "1", names, ["int8-pc-sym", "int4-g128-asym"], entries,
                     proxy_to_kl=2.0, spearman=0.9).save(run.parent / "sensitivity.json")
    return tmp_path / "runs"


def test_runs_are_found_and_tabulated(runs_dir):
    (runs_dir / "broken").mkdir()
    (runs_dir / "broken" / "front.json").write_text("{")  # a run being written: skipped
    runs = find_runs(runs_dir)
    assert [r.name for r in runs] == ["tiny-llama / default"]
    df = front_frame(runs[0])
    assert list(df["kind"]) == ["baseline", "baseline", "measured", "proxy only", "measured"]
    assert df["recommended"].sum() == 1
    plans = plans_with_layers(runs[0])
    assert list(plans) == ["trial 7", "trial 9"]
    pf = plan_frame(plans["trial 7"])
    assert set(pf["format"]) == {"int4-g128-asym", "int8-pc-sym"} and (pf["role"] == "lm_head").sum() == 1


def test_sensitivity_frame_uses_measured_kl_where_there_is_one(runs_dir):
    sens, meta = sensitivity_frame(runs_dir / "tiny-llama" / "sensitivity.json")
    assert meta["spearman"] == 0.9 and meta["measured"] == 6
    first = sens[(sens["layer"] == sens["layer"].iloc[0]) & (sens["format"] == "int8-pc-sym")].iloc[0]
    assert first["estimated_kl"] == pytest.approx(first["measured_kl"])


def test_app_renders_every_tab(runs_dir, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("AUTOQUANT_RUNS_DIR", str(runs_dir))
    at = AppTest.from_file(str(APP), default_timeout=120).run()
    assert not at.exception, at.exception
    assert any("Recommended" in s.value and "trial 7" in s.value for s in at.success)
    assert any("estimated" in c.value for c in at.caption)
    assert len(at.dataframe) >= 3  # front table, most/least sensitive, plan table
    assert at.sidebar.selectbox[0].value == "tiny-llama / default"


def test_app_says_what_to_run_when_there_are_no_results(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("AUTOQUANT_RUNS_DIR", str(tmp_path))
    at = AppTest.from_file(str(APP), default_timeout=60).run()
    assert not at.exception
    assert "autoquant search" in at.info[0].value


def test_model_slug_names_run_directories() -> None:
    assert model_slug(ModelSource("x.gguf", "gguf", "/a", "SmolLM2.Q4_1.gguf")) == "SmolLM2.Q4_1"
    assert model_slug(ModelSource("org/name", "hub", "org/name")) == "org--name"
    assert model_slug(ModelSource("/m/my model", "dir", "/m/my model")) == "my-model"
    assert search_run_dir(ModelSource("org/name", "hub", "org/name"), "s", "r") == Path("r") / "org--name" / "s"
