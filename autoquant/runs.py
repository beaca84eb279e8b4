"""Run files: where a model's profile and searches are written, and reading them back for the app.

A runs directory looks like

    runs/<model>/sensitivity.json           autoquant profile (and search) write it
    runs/<model>/<study>/front.json         autoquant search: the whole result
    runs/<model>/<study>/plan.json          the recommended plan

`model_slug` / `model_run_dir` / `search_run_dir` name those directories for every command
that writes them. The readers turn the files into tables (pandas) the Streamlit app plots;
they hold no UI, so tests call them directly.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autoquant.formats import QuantFormat
from autoquant.layers import layer_block, layer_role
from autoquant.plan import Plan

if TYPE_CHECKING:
    import pandas as pd

    from autoquant.models import ModelSource

FRONT_FILE = "front.json"
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
    result: dict[str, Any]  # front.json as written by autoquant.search.report

    @property
    def name(self) -> str:
        return f"{self.path.parent.name} / {self.path.name}"

    @property
    def sensitivity_path(self) -> Path | None:
        for candidate in (self.path / SENSITIVITY_FILE, self.path.parent / SENSITIVITY_FILE):
            if candidate.is_file():
                return candidate
        return None

    @property
    def plot_path(self) -> Path | None:
        p = self.path / "front.png"
        return p if p.is_file() else None


def find_runs(root: str | Path) -> list[SearchRun]:
    """Every readable search run under `root`, newest first."""
    runs = []
    for front in Path(root).glob(f"**/{FRONT_FILE}"):
        try:
            result = json.loads(front.read_text())
        except (OSError, json.JSONDecodeError):
            continue  # a run being written right now; it will be there on the next refresh
        if "front" in result:
            runs.append((front.stat().st_mtime, SearchRun(front.parent, result)))
    return [r for _, r in sorted(runs, key=lambda t: -t[0])]


def find_sensitivity_tables(root: str | Path) -> list[Path]:
    return sorted(Path(root).glob(f"**/{SENSITIVITY_FILE}"))


def _row(r: dict[str, Any], kind: str) -> dict[str, Any]:
    m = r.get("measured") or {}
    return {
        "plan": r["label"],
        "kind": kind,
        "recommended": bool(r.get("recommended")),
        "memory_GB": r["memory_bytes"] / 1e9,
        "bits_per_weight": r["bits_per_weight"],
        "decode_ms": None if r.get("decode_s") is None else r["decode_s"] * 1e3,
        "prefill_ms": None if r.get("prefill_s") is None else r["prefill_s"] * 1e3,
        "latency": "estimated" if r.get("latency_estimated") else "measured",
        "perplexity": m.get("perplexity"),
        "ppl_change_pct": None if m.get("ppl_change") is None else m["ppl_change"] * 100,
        "kl": m.get("kl"),
        "proxy_kl": r.get("proxy_kl"),
        "formats": r.get("summary", ""),
    }


def front_frame(run: SearchRun) -> pd.DataFrame:
    """One row per plan: the front (measured or proxy-only) and the uniform baselines."""
    import pandas as pd  # only the app and its tests read runs as tables

    rows = [_row(r, "baseline") for r in run.result.get("baselines", [])]
    for r in run.result["front"]:
        rows.append(_row(r, "measured" if r.get("measured") else "proxy only"))
    return pd.DataFrame(rows)


def plans_with_layers(run: SearchRun) -> dict[str, Plan]:
    """The plans whose per-layer formats the run kept (measured front plans, recommended)."""
    out: dict[str, Plan] = {}
    rows = list(run.result["front"])
    if run.result.get("recommended"):
        rows.insert(0, run.result["recommended"])
    for r in rows:
        if "layers" in r and r["label"] not in out:
            formats = {name: QuantFormat.parse(f) for name, f in r["layers"].items()}
            meta = {k: r.get(k) for k in ("memory_bytes", "bits_per_weight", "decode_s", "proxy_kl", "measured")}
            out[r["label"]] = Plan(formats, run.result.get("model", ""), meta)
    return out


def plan_frame(plan: Plan) -> pd.DataFrame:
    """Per layer: block, role, format, bits."""
    import pandas as pd  # only the app and its tests read runs as tables

    rows = []
    for name, fmt in plan.formats.items():
        block = layer_block(name)
        rows.append({
            "layer": name, "block": -1 if block is None else block, "role": layer_role(name),
            "format": str(fmt), "bits": fmt.bits,
        })
    return pd.DataFrame(rows)


def sensitivity_frame(path: str | Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Long table (layer, block, role, format, estimated_kl, measured) and the table's metadata."""
    import pandas as pd  # only the app and its tests read runs as tables

    from autoquant.sensitivity.table import SensitivityTable

    table = SensitivityTable.load(path)
    rows = []
    for (layer, fmt), e in table.entries.items():
        block = layer_block(layer)
        rows.append({
            "layer": layer, "block": -1 if block is None else block, "role": layer_role(layer), "format": fmt,
            "estimated_kl": table.estimated_kl(layer, fmt), "proxy": e.proxy, "measured_kl": e.kl,
        })
    meta = {"model": table.model, "spearman": table.spearman, "proxy_to_kl": table.proxy_to_kl,
            "measured": sum(1 for e in table.entries.values() if e.kl is not None), "entries": len(table.entries)}
    return pd.DataFrame(rows), meta
