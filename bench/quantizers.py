"""RTN vs GPTQ vs AWQ on SmolLM2 (CPU): uniform int4-g128 plans, recorded for the README.

    nice -n 10 python bench/quantizers.py [--eval-tokens 16384] [--calib-tokens 4096]

Calibrates on wikitext-2 *validation* (the input moments of one pass of the unquantized model),
evaluates on wikitext-2 *test* (perplexity, KL vs the unquantized model, windows of 512 tokens).
Writes bench/results/quantizers-smollm2.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from autoquant.apply import apply_plan
from autoquant.calibration import input_moments
from autoquant.data import calibration_text, evaluation_text, token_windows
from autoquant.evaluate import QualityEvaluator
from autoquant.layers import discover_layers
from autoquant.models import load_model, load_tokenizer, resolve_model
from autoquant.plan import Plan

FORMATS = ["int4-g128-asym", "int4-g128-sym"]
QUANTIZERS = ["rtn", "gptq", "awq"]


def run(eval_tokens: int, calib_tokens: int, out: Path) -> dict:
    source = resolve_model(None)
    tok = load_tokenizer(source)
    calib = calibration_text()
    windows = token_windows(tok, evaluation_text(None, calib=calib), 512, eval_tokens)
    reference = load_model(source)
    layers = discover_layers(reference)
    evaluator = QualityEvaluator(reference, windows)
    t = time.perf_counter()
    moments = input_moments(reference, tok, calib, calib_tokens)
    calib_seconds = time.perf_counter() - t
    del reference
    rows = []
    result = {
        "model": source.display, "eval_text": "wikitext-2 test (embedded)",
        "calib_text": calib.name, "eval_tokens": evaluator.tokens, "calib_tokens": int(moments.tokens),
        "calibration_pass_seconds": round(calib_seconds, 1),
        "reference_perplexity": evaluator.reference.perplexity, "plans": rows,
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}",
    }
    for fmt in FORMATS:
        for q in QUANTIZERS:
            plan = Plan.uniform(fmt, layers, source.display, quantizer=q)
            model = load_model(source)
            t = time.perf_counter()
            apply_plan(model, plan, "fake", moments)
            quantize_seconds = time.perf_counter() - t
            r = evaluator.evaluate(model)
            rows.append({
                "format": fmt, "quantizer": q, "plan": plan.summary(),
                "perplexity": r.perplexity, "ppl_change": r.ppl_change(evaluator.reference.perplexity),
                "kl": r.kl, "quantize_seconds": round(quantize_seconds, 1),
            })
            print(f"{fmt:>15} {q:>5}  ppl {r.perplexity:.3f} ({rows[-1]['ppl_change'] * 100:+.2f}%)  KL {r.kl:.4f}  "
                  f"quantize {quantize_seconds:.1f} s", flush=True)
            out.write_text(json.dumps(result, indent=2) + "\n")  # each plan as it finishes: survives a kill
    return result


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--eval-tokens", type=int, default=16384)
    ap.add_argument("--calib-tokens", type=int, default=4096)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "quantizers-smollm2.json"))
    ns = ap.parse_args()
    t0 = time.time()
    res = run(ns.eval_tokens, ns.calib_tokens, Path(ns.out))
    res["wall_seconds"] = round(time.time() - t0, 1)
    Path(ns.out).write_text(json.dumps(res, indent=2) + "\n")
