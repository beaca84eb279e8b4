"""Run files: where runs are written (naming), and finished work read back for the app:
search runs, sensitivity tables, the catalog.

A runs directory looks like

    runs/<model>/sensitivity.json           autoquant profile (and search) write it
    runs/<model>/<study>/front.json         autoquant search: the whole result (FrontDocument)
    runs/<model>/<study>/plan.json          the recommended plan
    runs/catalog/catalog.json               scheduled searches: one target per model x GPU

`model_slug` / `model_run_dir` / `search_run_dir` name those directories for every command
that writes them. Files are read through their schemas (autoquant.runfiles); these functions
turn the typed documents into tables (pandas) the Streamlit app plots. They hold no UI, so
tests call them.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from autoquant.formats import QuantFormat
from autoquant.layers import layer_block, layer_role
from autoquant.plan import Plan
from autoquant.runfiles import CATALOG_FILE, FRONT_FILE, FrontDocument, PlanPoint, RunFileError, read_front

if TYPE_CHECKING:
    import pandas as pd

    from autoquant.models import ModelSource

SENSITIVITY_FILE = "sensitivity.json"
DEFAULT_RUNS_DIR = "runs"


# ---- naming ---------------------------------------------------------------------------------------
def model_slug(source: ModelSource) -> str:
    """A directory name for the model: GGUF stem, directory name, or org--name."""
    if source.kind == "gguf":
        raw = Path(source.gguf_file or source.path).stem
    elif source.kind == "dir":
        raw = Path(source.path).name
    else:
        raw = source.spec.replace("/", "--")
    return re.sub(r"[^A-Za-z0-9._-]+", "-", raw).strip("-") or "model"


def model_run_dir(source: ModelSource, runs_dir: str | Path = DEFAULT_RUNS_DIR) -> Path:
    """runs/<model>/: the model's sensitivity table, and its searches below it."""
    return Path(runs_dir) / model_slug(source)


def search_run_dir(source: ModelSource, study: str, runs_dir: str | Path = DEFAULT_RUNS_DIR) -> Path:
    """runs/<model>/<study>/: one search's study.db, front.json, plan.json, front.png."""
    return model_run_dir(source, runs_dir) / study


# ---- reading back -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SearchRun:
    path: Path  # the run directory holding front.json
    result: FrontDocument

    @property
    def name(self) -> str:
        return f"{self.path.parent.name} / {self.path.name}"

    @property
    def sensitivity_path(self) -> Path | None:
        for candidate in (self.path / SENSITIVITY_FILE, self.path.parent / SENSITIVITY_FILE):
            if candidate.is_file():
                return candidate
        return None


@dataclass
class RunScan:
    runs: list[SearchRun] = field(default_factory=list)  # newest first
    problems: list[str] = field(default_factory=list)  # one line per front.json that could not be read


def front_files(root: str | Path) -> list[Path]:
    """Every front.json under `root`, newest first."""
    return sorted(Path(root).glob(f"**/{FRONT_FILE}"), key=lambda p: -p.stat().st_mtime)


def load_run(front: Path) -> SearchRun:
    return SearchRun(front.parent, read_front(front))


def scan_runs(root: str | Path) -> RunScan:
    scan = RunScan()
    for front in front_files(root):
        try:
            scan.runs.append(load_run(front))
        except RunFileError as e:
            scan.problems.append(str(e))
    return scan


def find_runs(root: str | Path) -> list[SearchRun]:
    """Every readable search run under `root`, newest first."""
    return scan_runs(root).runs


def find_sensitivity_tables(root: str | Path) -> list[Path]:
    return sorted(Path(root).glob(f"**/{SENSITIVITY_FILE}"))


def catalog_path(root: str | Path) -> Path | None:
    p = Path(root) / "catalog" / CATALOG_FILE
    return p if p.is_file() else None


# ---- the front ----------------------------------------------------------------------------------------
def _ms(s: float | None) -> float | None:
    return None if s is None else s * 1e3


def _row(r: PlanPoint, kind: str) -> dict:
    m = r.measured
    return {
        "plan": r.label,
        "kind": kind,
        "recommended": r.recommended,
        "memory_GB": r.memory_bytes / 1e9,
        "bits_per_weight": r.bits_per_weight,
        "decode_ms": _ms(r.decode_s),
        "prefill_ms": _ms(r.prefill_s),
        "latency": "estimated" if r.latency_estimated else "measured",
        "perplexity": None if m is None else m.perplexity,
        "ppl_change_pct": None if m is None else m.ppl_change * 100,
        "kl": None if m is None else m.kl,
        "proxy_kl": r.proxy_kl,
        "formats": r.summary,
    }


def front_frame(run: SearchRun) -> pd.DataFrame:
    """One row per plan: the uniform baselines, then the front (measured or proxy-only)."""
    import pandas as pd  # only the app and its tests read runs as tables

    rows = [_row(r, "baseline") for r in run.result.baselines]
    rows += [_row(r, "measured" if r.measured else "proxy only") for r in run.result.front]
    return pd.DataFrame(rows)


def plans_with_layers(run: SearchRun) -> dict[str, Plan]:
    """The plans whose per-layer formats the run kept (measured front plans, recommended first)."""
    out: dict[str, Plan] = {}
    rec = run.result.recommended
    for r in ([rec] if rec else []) + list(run.result.front):
        if r.layers is not None and r.label not in out:
            formats = {name: QuantFormat.parse(f) for name, f in r.layers.items()}
            meta = {"memory_bytes": r.memory_bytes, "bits_per_weight": r.bits_per_weight, "decode_s": r.decode_s,
                    "proxy_kl": r.proxy_kl, "measured": None if r.measured is None else vars(r.measured)}
            out[r.label] = Plan(formats, run.result.model, meta, dict(r.quantizers or {}),
                                calibration=run.result.calibration if r.quantizers else None)
    return out


def plan_frame(plan: Plan, run: SearchRun | None = None, table=None) -> pd.DataFrame:
    """Per layer: block, role, format, bits; with the run's layer shapes its bytes, with a
    sensitivity table (SensitivityTable) its estimated KL."""
    import pandas as pd  # only the app and its tests read runs as tables

    shapes = {l.name: l for l in run.result.layers} if run is not None else {}
    rows = []
    for name, fmt in plan.formats.items():
        block = layer_block(name)
        row = {"layer": name, "block": -1 if block is None else block, "role": layer_role(name),
               "format": str(fmt), "quantizer": plan.quantizer_of(name), "bits": fmt.bits}
        if name in shapes:
            s = shapes[name]
            row["bytes"] = 0 if s.tied and fmt.is_float else fmt.storage_bytes(s.out_features, s.in_features)
        if table is not None:
            try:
                row["estimated_kl"] = table.estimated_kl(name, fmt, plan.quantizer_of(name))
            except KeyError:  # a format the table did not profile
                row["estimated_kl"] = None
        rows.append(row)
    return pd.DataFrame(rows)


# ---- sensitivity --------------------------------------------------------------------------------------
def sensitivity_frame(table) -> tuple[pd.DataFrame, dict]:
    """Long table (layer, block, role, format, estimated_kl, measured) and the table's metadata."""
    import pandas as pd  # only the app and its tests read runs as tables

    rows = []
    for (layer, fmt, quantizer), e in table.entries.items():
        block = layer_block(layer)
        kl = table.estimated_kl(layer, fmt, quantizer)
        rows.append({
            # "format" labels the column: the format, with its quantizer unless round-to-nearest
            "layer": layer, "block": -1 if block is None else block, "role": layer_role(layer), "format": e.variant,
            "quantizer": quantizer, "estimated_kl": kl, "log10_kl": math.log10(max(kl, 1e-7)), "proxy": e.proxy,
            "measured_kl": e.kl, "measured": e.kl is not None,
        })
    meta = {"model": table.model, "spearman": table.spearman, "proxy_to_kl": table.proxy_to_kl,
            "measured": sum(1 for e in table.entries.values() if e.kl is not None), "entries": len(table.entries)}
    return pd.DataFrame(rows), meta


# ---- comparing runs -----------------------------------------------------------------------------------
def compare_frame(runs: list[SearchRun]) -> pd.DataFrame:
    """One row per run: its setting (model, GPU, workload, budget) and its recommended plan."""
    import pandas as pd  # only the app and its tests read runs as tables

    rows = []
    for run in runs:
        d, rec = run.result, run.result.recommended
        m = rec.measured if rec else None
        rows.append({
            "run": run.name, "model": d.model, "engine": d.engine, "hardware": d.hardware, "batch": d.batch, "context": d.context,
            "memory_budget_GB": d.budgets.memory_bytes / 1e9,
            "recommended": rec.label if rec else "(none fits)", "formats": rec.summary if rec else "",
            "memory_GB": rec.memory_bytes / 1e9 if rec else None,
            "bits_per_weight": rec.bits_per_weight if rec else None,
            "decode_ms": _ms(rec.decode_s) if rec else None,
            "latency": "estimated" if d.latency_estimated else "measured",
            "ppl_change_pct": None if m is None else m.ppl_change * 100, "kl": None if m is None else m.kl,
            "trials": d.study.trials,
        })
    return pd.DataFrame(rows)


def fronts_frame(runs: list[SearchRun]) -> pd.DataFrame:
    """The measured points of several runs, in one table (a `run` column), for one chart."""
    import pandas as pd  # only the app and its tests read runs as tables

    frames = []
    for run in runs:
        df = front_frame(run)
        frames.append(df[df["kind"] == "measured"].assign(run=run.name))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def catalog_frame(targets: list) -> pd.DataFrame:
    """The schedule catalog's targets (autoquant.runfiles.CatalogTarget), one row each."""
    import pandas as pd  # only the app and its tests read runs as tables

    return pd.DataFrame([{
        "target": t.id, "model": t.model, "hardware": t.hardware, "feasible": t.feasible,
        "memory_GB": None if t.memory_bytes is None else t.memory_bytes / 1e9, "decode_ms": t.decode_ms,
        "latency": "estimated" if t.latency_estimated else "measured",
        "ppl": t.ppl, "delta_ppl": t.delta_ppl, "kl": t.kl, "date": t.date,
    } for t in targets])
