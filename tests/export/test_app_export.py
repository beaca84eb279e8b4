"""The app's plan view exports through `export_plan` (headless, AppTest)."""

from __future__ import annotations

import json
from pathlib import Path

from autoquant.layers import discover_layers
from tiny_models import tiny_model

APP = Path(__file__).parents[2] / "app.py"


def test_app_plan_view_exports_and_shows_refusals(tiny_model_dir, tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    names = [l.name for l in discover_layers(tiny_model("llama"))]
    run = tmp_path / "runs" / "tiny-llama" / "default"
    run.mkdir(parents=True)
    row = {"trial": 1, "memory_bytes": 1, "linear_bytes": 1, "bits_per_weight": 8.0, "decode_s": 1e-4,
           "prefill_s": 1e-2, "latency_estimated": True, "proxy_kl": 0.01, "summary": "x", "recommended": False,
           "measured": None}
    plans = [dict(row, label="int8", layers=dict.fromkeys(names, "int8-pc-sym")),
             dict(row, label="split", layers={n: "int8-pc-sym" if "k_proj" in n else "int4-g32-sym" for n in names})]
    front = {"autoquant_search_version": 1, "model": str(tiny_model_dir), "model_spec": str(tiny_model_dir),
             "engine": "vllm", "hardware": "h100", "latency_estimated": True, "batch": 1, "context": 128,
             "budgets": {"memory_bytes": 5}, "study": {"name": "default", "trials": 2}, "baselines": [],
             "front": plans, "recommended": None, "notes": []}
    (run / "front.json").write_text(json.dumps(front))
    monkeypatch.setenv("AUTOQUANT_RUNS_DIR", str(tmp_path / "runs"))
    at = AppTest.from_file(str(APP), default_timeout=120).run()
    assert not at.exception, at.exception

    def export(plan: str, out: Path):
        next(s for s in at.selectbox if s.label == "plan").set_value(plan).run()
        assert next(s for s in at.selectbox if s.label == "serving engine").value == "vllm"
        next(t for t in at.text_input if t.label == "checkpoint directory").set_value(str(out)).run()
        next(b for b in at.button if b.label == "Export checkpoint").click().run()
        assert not at.exception, at.exception

    export("int8", tmp_path / "int8")
    assert any("wrote" in s.value for s in at.success)
    assert "quantization_config" in json.loads((tmp_path / "int8" / "config.json").read_text())
    export("split", tmp_path / "split")
    assert any("fused shards" in e.value and "model.layers.0.self_attn.q_proj" in e.value for e in at.error)
    assert not (tmp_path / "split").exists()
