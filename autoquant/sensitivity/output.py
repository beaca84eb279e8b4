"""Where a profile lands beside its run: the table as JSON and the heatmap as PNG."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from autoquant.sensitivity.heatmap import save_heatmap
from autoquant.sensitivity.table import SensitivityTable

TABLE_FILE = "sensitivity.json"
HEATMAP_FILE = "sensitivity.png"


@dataclass(frozen=True)
class ProfileFiles:
    table: Path
    heatmap: Path


def save_profile(table: SensitivityTable, run_dir: str | Path) -> ProfileFiles:
    """Write run_dir/sensitivity.json and run_dir/sensitivity.png (the search calls this too)."""
    run_dir = Path(run_dir)
    return ProfileFiles(table.save(run_dir / TABLE_FILE), save_heatmap(table, run_dir / HEATMAP_FILE))
