"""What one search found, measured and recommends: the data `run.py` fills and `report.py` renders."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from autoquant.quality import Measurement
from autoquant.search.front import FrontPlan, ParetoFront
from autoquant.search.objectives import SearchProblem
from autoquant.search.request import SearchRequest
from autoquant.space import SearchSpace


@dataclass
class SearchResult:
    """What a search found, measured and recommends; `report.py` renders it."""

    request: SearchRequest
    model: str
    space: SearchSpace
    hardware: str
    latency_estimated: bool
    study: str
    storage: str
    trials_total: int
    trials_added: int
    seeded: int
    front: ParetoFront
    recommended: FrontPlan | None
    reference: Measurement
    run_dir: Path
    proxy_front_size: int
    proxy_hv_ratio: float  # hypervolume of all trials / the exact DP front's, (proxy KL, weight bytes)
    problem: SearchProblem
    choices: list[list[int]]  # every search trial's plan, as choice indices
    table_notes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
