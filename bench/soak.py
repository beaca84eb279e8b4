"""Soak: N back-to-back `autoquant search` runs resuming one study. Per run: wall time, peak
resident memory (the child's own ru_maxrss, from wait4), trials in the study. Growth is the
slope of a least-squares line over the runs, as a fraction of the first run per run.

    .venv/bin/python bench/soak.py                      # 20 runs, SmolLM2 (the embedded model)
    .venv/bin/python bench/soak.py --runs 3 --model DIR --trials 100

Writes bench/results/soak-<model>.json (or --out). The profile must be cached (run
`autoquant profile` once first, or the first run profiles and is left out of the fit).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def growth(values: list[float]) -> float:
    """Least-squares slope per run, relative to the fitted first value."""
    y = np.asarray(values, dtype=float)
    slope, intercept = np.polyfit(np.arange(len(y)), y, 1)
    return float(slope / intercept) if intercept else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--model", default=None, help="model (default: the embedded SmolLM2)")
    ap.add_argument("--trials", type=int, default=300, help="trials each run adds")
    ap.add_argument("--budget", default="24GB")
    ap.add_argument("--measure", type=int, default=None, help="passed to search (default: its own)")
    ap.add_argument("--eval-tokens", type=int, default=None, help="passed to search (default: its own)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="aq-soak-"))
    storage = f"sqlite:///{work / 'study.db'}"
    cmd = [sys.executable, "-m", "autoquant", "search", "--budget", args.budget, "--trials", str(args.trials),
           "--storage", storage, "--study", "soak", "--runs-dir", str(work / "runs"), "--no-progress", "--json"]
    if args.model:
        cmd += ["--model", args.model]
    if args.measure:
        cmd += ["--measure", str(args.measure)]
    if args.eval_tokens:
        cmd += ["--eval-tokens", str(args.eval_tokens)]
    # Sequential waits: wait4 needs the child unreaped, so Popen must not poll it first.
    runs = []
    for i in range(args.runs):
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        t = time.perf_counter()
        out = p.stdout.read()
        err = p.stderr.read()
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - t
        if p.returncode != 0:
            raise SystemExit(f"run {i}: search failed: {(err.strip().splitlines() or ['?'])[-1]}")
        result = json.loads(out)
        row = {"run": i, "seconds": round(seconds, 2), "max_rss_mb": round(usage.ru_maxrss / 1024, 1),
               "trials": result["study"]["trials"], "search_s": result["timings_s"].get("search"),
               "total_s": result["timings_s"].get("total")}
        runs.append(row)
        print(json.dumps(row), flush=True)
        write(args, runs)
    shutil.rmtree(work, ignore_errors=True)


def write(args: argparse.Namespace, runs: list[dict]) -> None:
    """After every run, so an interrupted soak still leaves its numbers."""
    fit = runs[1:] if len(runs) > 2 else runs  # the first run may profile and measure: left out
    summary = {
        "runs": len(runs), "trials_per_run": args.trials, "model": args.model or "SmolLM2-135M-Instruct (embedded)",
        "rss_growth_per_run": round(growth([r["max_rss_mb"] for r in fit]), 5) if len(fit) > 1 else None,
        "time_growth_per_run": round(growth([r["seconds"] for r in fit]), 5) if len(fit) > 1 else None,
        "rss_mb_first_last": [runs[0]["max_rss_mb"], runs[-1]["max_rss_mb"]],
        "seconds_first_last": [runs[0]["seconds"], runs[-1]["seconds"]],
        "trials_final": runs[-1]["trials"], "cpus": os.cpu_count(),
        "load_average_at_end": os.getloadavg()[0],
    }
    name = Path(args.model).name if args.model else "smollm2"
    out = Path(args.out) if args.out else Path(__file__).parent / "results" / f"soak-{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"summary": summary, "runs": runs}, indent=1) + "\n")


if __name__ == "__main__":
    main()
