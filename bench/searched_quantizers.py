"""Searched plans with gptq allowed vs round-to-nearest only, at the memory of uniform int4-g128 (SmolLM2, CPU).

    nice -n 10 .venv/bin/python bench/searched_quantizers.py [--eval-tokens 8192] [--trials 1000]

Two `autoquant search` runs on the embedded SmolLM2 with the same budget (the serving memory of
uniform int4-g128-asym, batch 1, context 4096) and everything else default: the default space as it
ships (rtn and gptq per layer), then the same space with `--quantizers rtn`. Each measures its front
and the uniform baselines on wikitext-2 *test* (held out: profiling and gptq calibrate on
validation), with the weights really quantized (gptq layers calibrated block by block, as `export`
does). Writes bench/results/searched-quantizers-smollm2.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

from autoquant.costs import Budgets
from autoquant.formats import QuantFormat
from autoquant.memory import ModelShape, estimate_memory
from autoquant.models import resolve_model
from autoquant.plan import Plan
from autoquant.search import SearchRequest, run_search


def _plan_row(p) -> dict:
    m = p.measured or {}
    return {"label": p.label or f"#{p.trial}", "summary": p.plan.summary(), "memory_bytes": p.costs.memory_bytes,
            "bits_per_weight": round(p.costs.bits_per_weight, 3), "proxy_kl": p.costs.proxy_kl,
            "perplexity": m.get("perplexity"), "ppl_change": m.get("ppl_change"), "kl": m.get("kl"),
            "quantizers": {q: sum(1 for n in p.plan.formats if p.plan.quantizer_of(n) == q and not p.plan.formats[n].is_float)
                           for q in ("rtn", "gptq", "awq")}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--eval-tokens", type=int, default=8192)
    ap.add_argument("--trials", type=int, default=1000)
    ap.add_argument("--out", default="bench/results/searched-quantizers-smollm2.json")
    args = ap.parse_args()
    source = resolve_model(None)
    shape = ModelShape.from_source(source)
    budget = estimate_memory(shape, Plan.uniform(QuantFormat.parse("int4-g128-asym"), list(shape.layers)), 1, 4096).total_bytes
    result = {"model": source.display, "budget_bytes": budget,
              "budget": "serving memory of uniform int4-g128-asym (batch 1, context 4096)",
              "eval_tokens_requested": args.eval_tokens, "trials": args.trials,
              "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}",
              "runs": {}}
    runs = tempfile.mkdtemp(prefix="aq-bench-runs-")
    for name, quantizers in (("rtn+gptq (default space)", None), ("rtn only (--quantizers rtn)", ("rtn",))):
        t = time.perf_counter()
        r = run_search(SearchRequest(budgets=Budgets(memory_bytes=budget), trials=args.trials, eval_tokens=args.eval_tokens,
                                     runs_dir=runs, progress=False, quantizers=quantizers))
        rec = r.recommended
        result["runs"][name] = {
            "space": r.space.name, "seconds": round(time.perf_counter() - t, 1),
            "timings": {k: round(v, 1) for k, v in r.timings.items()},
            "reference_perplexity": r.reference.perplexity, "eval_tokens": r.reference.tokens,
            "recommended": _plan_row(rec) if rec else None,
            "front": [_plan_row(p) for p in r.front.plans if p.measured is not None],
            "baselines": [_plan_row(b) for b in r.front.baselines],
        }
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
        print(name, json.dumps(result["runs"][name]["recommended"]), flush=True)
    a, b = (result["runs"][k]["recommended"] for k in result["runs"])
    result["gptq_allowed_beats_rtn_only"] = bool(a and b and a["kl"] < b["kl"] and a["perplexity"] < b["perplexity"])
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print("gptq allowed beats rtn only:", result["gptq_allowed_beats_rtn_only"])


if __name__ == "__main__":
    main()
