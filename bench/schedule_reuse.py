"""What sharing measured plans between a fleet's targets saves (issue 23: one SmolLM2 target took ~500 s).

Runs every target of a fleet spec in-process, one after another, twice, with the search
`autoquant schedule run` makes for it (`runner.search_request`):
  alone   each target measures its plans by itself (as before: a fresh measured-plans file each)
  shared  the targets share the model's measured plans (as `schedule run` does now)
and records each search's phases (profile, dp, search, measure), how many plans it measured for
real (forward passes over the evaluation text), and its recommendation, which must be the same
in both modes. Needs the model's sensitivity profile cached (run `schedule run` once first).

    AUTOQUANT_CACHE=/tmp/autoquant-schedule-check/cache nice -n 10 .venv/bin/python \
        bench/schedule_reuse.py /tmp/autoquant-schedule-check/fleet.yaml bench/results/schedule-reuse-smollm2.json
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from autoquant.schedule import load_fleet
from autoquant.schedule.runner import search_request
from autoquant.schedule.targets import resolve_all
from autoquant.search import run_search
from autoquant.search.measured_plans import measured_plans_path


def _lines(path: Path) -> int:
    return sum(1 for line in path.read_text().splitlines() if line.strip()) if path.exists() else 0


def run(fleet_path: str, out: str) -> dict:
    fleet = load_fleet(fleet_path)
    targets = resolve_all(fleet)
    rows: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="schedule-reuse-") as tmp:
        for mode in ("alone", "shared"):
            rows[mode] = []
            for i, rt in enumerate(targets):
                shared = Path(tmp) / mode / (str(i) if mode == "alone" else "all")
                path = measured_plans_path(rt.inputs["model"], shared)
                before = _lines(path)
                t0 = time.perf_counter()
                result = run_search(search_request(rt, fleet, str(Path(tmp) / "runs" / mode / str(i)), str(shared)))
                rec = result.recommended
                row = {"target": rt.target.id, "seconds": round(time.perf_counter() - t0, 1),
                       "timings": {k: round(v, 1) for k, v in result.timings.items()},
                       "plans_measured": _lines(path) - before,
                       "recommended": {"memory_bytes": rec.costs.memory_bytes, "kl": rec.measured["kl"],
                                       "formats": {n: str(f) for n, f in rec.plan.formats.items()}}}
                rows[mode].append(row)
                print(f"{mode:6s} {row['target']:48s} {row['seconds']:7.1f} s, measured {row['plans_measured']} "
                      f"plans, phases {row['timings']}", flush=True)
    same = all(a["recommended"] == b["recommended"] for a, b in zip(rows["alone"], rows["shared"]))
    summary = {mode: {"seconds": round(sum(r["seconds"] for r in rs), 1),
                      "plans_measured": sum(r["plans_measured"] for r in rs)} for mode, rs in rows.items()}
    doc = {"fleet": Path(fleet_path).read_text(), "summary": summary, "same_recommendations": same, "targets": rows}
    Path(out).write_text(json.dumps(doc, indent=1) + "\n")
    print(json.dumps(summary), "same recommendations:", same)
    return doc


if __name__ == "__main__":
    run(sys.argv[1], sys.argv[2])
