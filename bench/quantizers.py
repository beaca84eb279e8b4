"""RTN vs GPTQ vs AWQ on SmolLM2 (CPU): uniform int4-g128 plans, recorded for the README.

    nice -n 10 .venv/bin/python bench/quantizers.py [--eval-tokens 8192] [--calib-tokens 8192] [--no-act-order]

Calibrates on wikitext-2 *validation*, block by block (`autoquant.quantizers.calibrate`), and
measures on wikitext-2 *test* through the one `QualityMeter` (perplexity, KL vs the unquantized
model, windows of 512 tokens). Writes bench/results/quantizers-smollm2.json after every plan.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import replace
from pathlib import Path

import torch

from autoquant.data import calibration_text, evaluation_text
from autoquant.layers import discover_layers
from autoquant.models import load_model, load_tokenizer, resolve_model
from autoquant.plan import Plan
from autoquant.quality import QualityMeter, eval_windows
from autoquant.quantizers.calibrate import CALIB_TOKENS, calibration_windows, quantize_model

FORMATS = ["int4-g128-asym", "int4-g128-sym"]
QUANTIZERS = ["rtn", "gptq", "awq"]


def run(eval_tokens: int, calib_tokens: int, formats: list[str], quantizers: list[str], out: Path,
        act_order: bool = True) -> dict:
    source = resolve_model(None)
    calib = calibration_text()
    text = evaluation_text(None, calib=calib)
    model = load_model(source)
    layers = discover_layers(model)
    cal = calibration_windows(load_tokenizer(source), calib, calib_tokens)
    meter = QualityMeter(model, eval_windows(source, text, eval_tokens), text, calibration=cal)
    rows = []
    result = {
        "model": source.display, "eval_text": text.name, "calib_text": calib.name,
        "eval_tokens": meter.tokens, "calib_tokens": int(cal.numel()),
        "reference_perplexity": meter.reference_perplexity, "plans": rows,
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}",
        "lm_head": "quantized like every other layer (the plan's uniform format); awq leaves o_proj and lm_head to rtn",
    }
    for fmt in formats:
        for q in quantizers:
            plan = Plan.uniform(fmt, layers, source.display, q)
            if not act_order and q == "gptq":  # a copy quantized apart: the default gptq uses act-order
                copy = load_model(source)
                t = time.perf_counter()
                quantize_model(copy, plan.formats, plan.quantizers, cal, act_order=False)
                r = meter.measure_model(copy)
                r = replace(r, seconds=time.perf_counter() - t)
                q = "gptq (no act-order)"
            else:
                r = meter.measure(plan)  # the seconds include block-by-block quantization
            rows.append({"format": fmt, "quantizer": q, "plan": plan.summary(), "perplexity": r.perplexity,
                         "ppl_change": r.ppl_change, "kl": r.kl, "seconds": round(r.seconds, 1)})
            print(f"{fmt:>15} {q:>5}  ppl {r.perplexity:.3f} ({r.ppl_change * 100:+.2f}%)  KL {r.kl:.4f}  "
                  f"{r.seconds:.1f} s", flush=True)
            out.write_text(json.dumps(result, indent=2) + "\n")  # each plan as it finishes: survives a kill
    return result


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--eval-tokens", type=int, default=8192)
    ap.add_argument("--calib-tokens", type=int, default=CALIB_TOKENS)
    ap.add_argument("--formats", nargs="+", default=FORMATS)
    ap.add_argument("--quantizers", nargs="+", default=QUANTIZERS)
    ap.add_argument("--no-act-order", dest="act_order", action="store_false",
                    help="gptq in plain column order instead of activation order (static groups)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "quantizers-smollm2.json"))
    ns = ap.parse_args()
    t0 = time.time()
    res = run(ns.eval_tokens, ns.calib_tokens, ns.formats, ns.quantizers, Path(ns.out), ns.act_order)
    res["wall_seconds"] = round(time.time() - t0, 1)
    Path(ns.out).write_text(json.dumps(res, indent=2) + "\n")
