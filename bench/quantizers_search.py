"""Searched plans with GPTQ/AWQ allowed vs RTN only, at the memory of uniform int4-g128-asym (SmolLM2).

    nice -n 10 python bench/quantizers_search.py [--trials 300] [--eval-tokens 8192]

Runs `autoquant search` twice under one memory budget (batch 1, context 4096): the default space
(rtn, gptq, awq per layer) and the same space restricted to rtn. Both recommended plans are
measured on held-out wikitext-2 test text (calibration: validation). Writes
bench/results/quantizers-search-smollm2.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import yaml

from autoquant.memory import ModelShape, estimate_memory
from autoquant.models import resolve_model
from autoquant.plan import Plan
from autoquant.search.objectives import Budgets
from autoquant.search.run import SearchRequest, run_search
from autoquant.space import bundled_spaces


def _rtn_only_space(tmp: Path) -> str:
    data = yaml.safe_load(bundled_spaces()["default"].read_text())
    data["name"] = "default-rtn"
    data["quantizers"] = {"default": ["rtn"]}
    path = tmp / "default-rtn.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def run(trials: int, eval_tokens: int, runs_dir: str) -> dict:
    source = resolve_model(None)
    shape = ModelShape.from_source(source)
    budget = estimate_memory(shape, Plan.uniform("int4-g128-asym", list(shape.layers)), 1, 4096).total_bytes
    out = {"model": source.display, "budget_bytes": budget, "trials": trials, "eval_tokens": eval_tokens, "runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for label, space in (("rtn-only", _rtn_only_space(Path(tmp))), ("rtn+gptq+awq", None)):
            t = time.perf_counter()
            req = SearchRequest(Budgets(budget), space=space, trials=trials, eval_tokens=eval_tokens,
                                runs_dir=runs_dir, progress=False)
            result = run_search(req)
            rec = result.recommended
            out["runs"][label] = {
                "plan": None if rec is None else rec.plan.summary(),
                "measured": None if rec is None else rec.measured,
                "memory_bytes": None if rec is None else rec.costs.memory_bytes,
                "profile_seconds": result.timings.get("profile"),
                "seconds": round(time.perf_counter() - t, 1),
            }
            print(label, json.dumps(out["runs"][label]), flush=True)
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=300)
    ap.add_argument("--eval-tokens", type=int, default=8192)
    ap.add_argument("--runs-dir", default="runs")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "quantizers-search-smollm2.json"))
    ns = ap.parse_args()
    res = run(ns.trials, ns.eval_tokens, ns.runs_dir)
    Path(ns.out).write_text(json.dumps(res, indent=2) + "\n")
