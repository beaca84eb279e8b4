"""How far the roofline (`autoquant/hardware/roofline.py`) is from a measured latency profile.

    python bench/roofline_check.py autoquant/hardware/profiles/h100-llama-3-8b.json            # any machine
    python bench/roofline_check.py PROFILE --out bench/results/roofline-check-h100.json

For every (layer shape, format, token bucket) in the profile, the roofline of the profile's GPU
(its built-in datasheet spec, derated by the efficiencies in roofline.py, as `--hardware <gpu>`
uses it without a profile) against the measured time: error = roofline / measured - 1. Prints the
median and largest |error| by weight width, overall and per token count. CPU only: it reads the
JSON and does arithmetic.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autoquant.formats import QuantFormat
from autoquant.hardware.profile import HardwareProfile
from autoquant.hardware.roofline import roofline_seconds
from autoquant.hardware.specs import match_spec


def errors(profile: HardwareProfile) -> list[dict]:
    spec = match_spec(profile.gpu_name)
    if spec is None:
        raise SystemExit(f"no built-in spec matches {profile.gpu_name!r}")
    rows = []
    for key, per_fmt in profile.layers.items():
        n, k = (int(v) for v in key.split("x"))
        for fmt_name, times in per_fmt.items():
            fmt = QuantFormat.parse(fmt_name)
            for tokens, measured in zip(profile.buckets, times):
                est = roofline_seconds(n, k, fmt, tokens, spec.bandwidth, spec.fp16_flops)
                rows.append({"shape": key, "format": fmt_name, "bits": fmt.bits, "tokens": tokens,
                                 "measured_s": measured, "roofline_s": est, "error": est / measured - 1})
    return rows


def summarize(rows: list[dict]) -> dict:
    out: dict = {}
    for bits in sorted({r["bits"] for r in rows}, reverse=True):
        sel = [r for r in rows if r["bits"] == bits]
        worst = max(sel, key=lambda r: abs(r["error"]))
        out[f"{bits}-bit"] = {
            "n": len(sel),
            "median_abs_error": statistics.median(abs(r["error"]) for r in sel),
            "max_abs_error": abs(worst["error"]),
            "worst": f"{worst['format']} {worst['shape']} at {worst['tokens']} tokens",
            "by_tokens": {t: statistics.median(abs(r["error"]) for r in sel if r["tokens"] == t)
                       for t in sorted({r["tokens"] for r in sel})},
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("profile")
    ap.add_argument("--out", default=None, help="write the per-point errors and the summary as JSON")
    args = ap.parse_args()
    prof = HardwareProfile.load(args.profile)
    rows = errors(prof)
    summary = summarize(rows)
    print(f"{prof.gpu_name}, profile of {prof.model} ({prof.created[:10]}): roofline / measured - 1")
    tokens = sorted({r["tokens"] for r in rows})
    print("| width | points | median abs error | max abs error (where) | " + " | ".join(f"{t} tok" for t in tokens) + " |")
    print("|---|---:|---:|---|" + "---:|" * len(tokens))
    for width, s in summary.items():
        per = " | ".join(f"{s['by_tokens'][t] * 100:.0f}%" for t in tokens)
        print(f"| {width} | {s['n']} | {s['median_abs_error'] * 100:.0f}% | {s['max_abs_error'] * 100:.0f}% "
              f"({s['worst']}) | {per} |")
    if args.out:
        Path(args.out).write_text(json.dumps({"profile": args.profile, "summary": summary, "points": rows}, indent=1))


if __name__ == "__main__":
    main()
