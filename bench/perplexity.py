"""Perplexity of uniform plans on SmolLM2 (CPU), recorded for the README and the issue note.

    python bench/perplexity.py [--eval-tokens 16384]

Writes bench/results/perplexity-smollm2.json: wikitext-2 *test* split (the calibration text
is the validation split), windows of 512 tokens, weights really quantized (RTN).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import platform
import time
from pathlib import Path

import torch

from autoquant.cli import main

PLANS = ["fp16", "int8-pc-sym", "int8-pc-asym", "int4-g128-asym", "int4-g128-sym", "int4-g64-asym", "int4-g32-asym"]


def run(eval_tokens: int) -> dict:
    out = io.StringIO()
    args = ["evaluate", "--json", "--eval-tokens", str(eval_tokens)]
    for p in PLANS:
        args += ["--plan", p]
    t0 = time.time()
    with contextlib.redirect_stdout(out):
        code = main(args)
    if code:
        raise SystemExit(code)
    result = json.loads(out.getvalue())
    result["wall_seconds"] = round(time.time() - t0, 1)
    result["machine"] = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"
    return result


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--eval-tokens", type=int, default=16384)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "perplexity-smollm2.json"))
    ns = ap.parse_args()
    res = run(ns.eval_tokens)
    Path(ns.out).write_text(json.dumps(res, indent=2) + "\n")
    print(f"reference ppl {res['reference_perplexity']:.3f} on {res['tokens']} tokens")
    for r in res["plans"]:
        print(f"{r['plan']:>16}  {r['linear_bits_per_weight']:.2f} bpw  ppl {r['perplexity']:.3f} ({r['ppl_change'] * 100:+.2f}%)  KL {r['kl']:.4f}")
