"""The Streamlit app, headless (AppTest): every view renders on real search runs; choosing a run,
a point (plan) and an export work; bad files and an empty directory are one clear message."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[2] / "app.py"


def _app(runs_dir, monkeypatch, timeout: int = 600):  # generous: CI machines are shared
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("AUTOQUANT_RUNS_DIR", str(runs_dir))
    return AppTest.from_file(str(APP), default_timeout=timeout).run()


def _texts(at) -> str:
    return "\n".join(str(e.value) for kind in ("markdown", "success", "info", "warning", "error", "caption")
                     for e in getattr(at, kind))


@pytest.fixture
def runs(searched_runs, tmp_path) -> Path:
    """A private copy: some tests add broken files."""
    return Path(shutil.copytree(searched_runs, tmp_path / "runs"))


def test_every_view_renders(runs, monkeypatch):
    at = _app(runs, monkeypatch)
    assert not at.exception, at.exception
    assert [t.label for t in at.tabs] == ["Pareto front", "Sensitivity", "Plan", "Compare runs"]
    assert any(s.value.startswith("Recommended: **") for s in at.success)
    assert "Latency is **estimated**" in _texts(at)
    assert "Most sensitive" in _texts(at) and "(layer, format, quantizer) entries" in _texts(at)
    assert "Schedule catalog" in _texts(at)
    # front table, most/least sensitive, plan table, runs compared
    assert len(at.dataframe) >= 5
    assert sorted(at.sidebar.selectbox(key="run").options) == ["tiny-llama / b549_6mb", "tiny-llama / b560mb"]


def test_choosing_a_run_and_a_point(runs, monkeypatch):
    at = _app(runs, monkeypatch)
    other = next(o for o in at.sidebar.selectbox(key="run").options if o != at.sidebar.selectbox(key="run").value)
    at.sidebar.selectbox(key="run").select(other).run()
    assert not at.exception
    budget = "0.55" if other.endswith("b549_6mb") else "0.56"
    assert f"**memory budget** {budget} GB" in "\n".join(m.value for m in at.sidebar.markdown)
    plan_box = at.sidebar.selectbox(key=f"plan:{other}")
    assert len(plan_box.options) >= 2, plan_box.options
    pick = plan_box.options[-1]
    plan_box.select(pick).run()
    assert not at.exception
    assert any(m.value.startswith(f"**{pick}**:") and "estimated KL" in m.value for m in at.markdown)


def test_export_of_the_chosen_plan(runs, monkeypatch, tmp_path):
    at = _app(runs, monkeypatch)
    out = tmp_path / "exported"
    at.text_input(key="export_dir").set_value(str(out))
    at.button(key="export_button").click().run(timeout=300)
    assert not at.exception, at.exception
    assert any(f"wrote {out}" in s.value for s in at.success), [e.value for e in at.error]
    assert (out / "model.safetensors").is_file() and (out / "autoquant_plan.json").is_file()
    # the checkpoint holds the plan chosen in the sidebar (the run's recommended one by default)
    study = at.sidebar.selectbox(key="run").value.split(" / ")[1]
    front = json.loads((runs / "tiny-llama" / study / "front.json").read_text())
    assert json.loads((out / "autoquant_plan.json").read_text())["layers"] == front["recommended"]["layers"]


def test_broken_files_are_one_message_each_never_a_traceback(runs, monkeypatch):
    old = runs / "tiny-llama" / "old" / "front.json"
    old.parent.mkdir()
    old.write_text(json.dumps({**json.loads(next(runs.glob("tiny-llama/b*/front.json")).read_text()),
                               "autoquant_search_version": 1}))
    cut = runs / "other" / "s" / "front.json"
    cut.parent.mkdir(parents=True)
    cut.write_text('{"autoquant_search_version": 2, "model": "x", "fro')
    (runs / "tiny-llama" / "b560mb" / "sensitivity.json").write_text("{")
    at = _app(runs, monkeypatch)
    assert not at.exception, at.exception
    warnings = [w.value for w in at.sidebar.warning]
    assert len(warnings) == 2 and any("re-run the same `autoquant search`" in w for w in warnings)
    assert any("truncated or not JSON" in w for w in warnings)
    assert any("sensitivity.json is truncated or not JSON" in e.value for e in at.error)
    assert any(s.value.startswith("Recommended") for s in at.success)  # the good runs still show


def test_an_empty_runs_directory_says_what_to_run(tmp_path, monkeypatch):
    at = _app(tmp_path, monkeypatch)
    assert not at.exception
    assert len(at.info) == 1 and "autoquant search --budget 24GB" in at.info[0].value


def test_only_broken_files_say_so(tmp_path, monkeypatch):
    (tmp_path / "m" / "s").mkdir(parents=True)
    (tmp_path / "m" / "s" / "front.json").write_text("")
    at = _app(tmp_path, monkeypatch)
    assert not at.exception
    assert len(at.error) == 1 and "No readable results" in at.error[0].value


def test_a_rewritten_run_file_shows_on_the_next_rerun(runs, monkeypatch):
    """Reads are cached per (path, mtime, size): a search that rewrites front.json is seen at once."""
    from dataclasses import replace

    from autoquant.runfiles import read_front, write_front

    at = _app(runs, monkeypatch)
    path = runs / "tiny-llama" / at.sidebar.selectbox(key="run").value.split(" / ")[1] / "front.json"
    write_front(path, replace(read_front(path), notes=["a note written after the app started"]))
    at.run()
    assert not at.exception
    assert "note: a note written after the app started" in _texts(at)
