"""Pareto fronts and their 2-D hypervolume.

`pareto_mask` keeps the non-dominated points of any number of minimised objectives;
`hypervolume_2d` is the area a 2-D front dominates up to a reference point (the measure the
DP front and the Optuna front are compared with). `ParetoFront` is the front of a search:
plans with their proxy costs and, once measured, their real quality.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from autoquant.plan import Plan
from autoquant.costs import PlanCosts


def pareto_mask(points: np.ndarray) -> np.ndarray:
    """Boolean mask of the non-dominated rows of `points` [n, m] (all objectives minimised).

    Duplicated points are kept once (the first).
    """
    pts = np.asarray(points, dtype=float)
    n = len(pts)
    keep = np.ones(n, dtype=bool)
    for i in range(n):
        if not keep[i]:
            continue
        # j dominates i: <= everywhere and < somewhere; duplicates of an earlier point drop out.
        le = np.all(pts <= pts[i], axis=1)
        lt = np.any(pts < pts[i], axis=1)
        dominated_by = le & lt
        same_earlier = np.all(pts == pts[i], axis=1) & (np.arange(n) < i)
        if dominated_by.any() or same_earlier.any():
            keep[i] = False
    return keep


def hypervolume_2d(points: np.ndarray, reference: tuple[float, float]) -> float:
    """Area dominated by `points` [n, 2] and bounded by `reference` (both objectives minimised).

    Points beyond the reference in either objective contribute nothing.
    """
    pts = np.asarray(points, dtype=float).reshape(-1, 2)
    rx, ry = reference
    pts = pts[(pts[:, 0] < rx) & (pts[:, 1] < ry)]
    if len(pts) == 0:
        return 0.0
    pts = pts[np.lexsort((pts[:, 1], pts[:, 0]))]  # by x, then y
    # Sweep in x: between consecutive points the dominated height is ry - (best y so far).
    best_y = np.minimum.accumulate(pts[:, 1])
    widths = np.diff(np.append(pts[:, 0], rx))
    area = float(np.sum(widths * (ry - best_y)))
    return area


@dataclass
class FrontPlan:
    """One plan of a front: where it came from, what the proxy says, what was measured."""

    plan: Plan
    costs: PlanCosts
    trial: int | None = None  # Optuna trial number; None for baselines
    label: str = ""  # "fp16", "int8-pc-sym", ... for baselines; "" for searched plans
    measured: dict[str, Any] | None = None  # perplexity, kl, ppl_change, tokens, text

    @property
    def measured_kl(self) -> float | None:
        return None if self.measured is None else self.measured["kl"]

    @property
    def quality_kl(self) -> float:
        """Measured KL where there is one, else the proxy."""
        return self.costs.proxy_kl if self.measured is None else self.measured["kl"]


@dataclass
class ParetoFront:
    """Non-dominated plans of a search (memory, latency, quality), sorted by memory."""

    plans: list[FrontPlan]
    baselines: list[FrontPlan] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.plans)


def hypervolume_ratio(points: np.ndarray, exact: np.ndarray, margin: float = 0.1) -> float:
    """HV(points) / HV(exact) in 2-D, both normalised by the exact front's ideal and nadir
    (each objective mapped to [0, 1] over the exact front) with the reference point at
    1 + margin in each: the usual way to compare an approximate front with the true one.
    """
    exact = np.asarray(exact, dtype=float).reshape(-1, 2)
    lo, hi = exact.min(axis=0), exact.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)

    def norm(p: np.ndarray) -> np.ndarray:
        return (np.asarray(p, dtype=float).reshape(-1, 2) - lo) / span

    ref = (1.0 + margin, 1.0 + margin)
    return hypervolume_2d(norm(points), ref) / hypervolume_2d(norm(exact), ref)
