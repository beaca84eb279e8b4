"""Pareto masks and 2-D hypervolume against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from autoquant.search.front import hypervolume_2d, pareto_mask


def test_pareto_mask_drops_dominated_and_duplicates() -> None:
    pts = np.array([[1, 5], [2, 2], [3, 3], [5, 1], [2, 2], [1, 6]])
    assert pareto_mask(pts).tolist() == [True, True, False, True, False, False]


def test_pareto_mask_three_objectives() -> None:
    pts = np.array([[1, 1, 5], [1, 1, 4], [0, 2, 9]])
    assert pareto_mask(pts).tolist() == [False, True, True]


def test_hypervolume_2d_staircase() -> None:
    # Staircase (1,3), (2,2), (3,1) under reference (4,4): 3*1 + 2*1 + 1*1 ... as rectangles = 6.
    assert hypervolume_2d(np.array([[1, 3], [2, 2], [3, 1]]), (4, 4)) == pytest.approx(6.0)
    # Dominated points and points beyond the reference add nothing.
    more = np.array([[1, 3], [2, 2], [3, 1], [3, 3], [5, 0], [0, 5]])
    assert hypervolume_2d(more, (4, 4)) == pytest.approx(6.0)
    assert hypervolume_2d(np.empty((0, 2)), (1, 1)) == 0.0


def test_hypervolume_matches_monte_carlo() -> None:
    rng = np.random.default_rng(0)
    pts = rng.random((30, 2))
    samples = rng.random((200_000, 2))
    dominated = np.zeros(len(samples), dtype=bool)
    for p in pts:
        dominated |= (samples[:, 0] >= p[0]) & (samples[:, 1] >= p[1])
    assert hypervolume_2d(pts, (1.0, 1.0)) == pytest.approx(dominated.mean(), abs=5e-3)
