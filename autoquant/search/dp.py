"""The exact Pareto front of the additive proxy, by dynamic programming.

The proxy problem is a multiple-choice knapsack: each tie group picks one format, quality
loss and weight bytes both add up over groups. Going group by group, the DP keeps only the
non-dominated (bytes, KL) partial sums, so the final set is exactly the front of the whole
space (every plan of the space is some path through the stages, and a dominated partial sum
can never become part of a non-dominated total because the costs are additive).

Latency is left out: the front is 2-D, which is what seeds the study and what the
hypervolume check compares against.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from autoquant.search.objectives import SearchProblem


@dataclass(frozen=True)
class ProxyFront:
    """The exact front: weight bytes ascending, proxy KL strictly descending."""

    weight_bytes: np.ndarray  # int64 [n]
    kl: np.ndarray  # float64 [n]
    choices: np.ndarray  # int16 [n, groups]: the choice index of each group per point

    def __len__(self) -> int:
        return len(self.kl)

    def points(self) -> np.ndarray:
        """[n, 2] as (kl, weight bytes), the axes the hypervolume uses."""
        return np.stack([self.kl, self.weight_bytes.astype(float)], axis=1)

    def spread(self, k: int, upto: int | None = None) -> list[int]:
        """Indices of about k points spread evenly in bytes over points 0..upto, both ends included."""
        last = len(self) - 1 if upto is None else upto
        if last + 1 <= k:
            return list(range(last + 1))
        targets = np.linspace(self.weight_bytes[0], self.weight_bytes[last], k)
        idx = np.searchsorted(self.weight_bytes[: last + 1], targets).clip(0, last)
        return sorted(set(int(i) for i in idx))

    def last_within(self, fits) -> int | None:
        """The largest index whose point `fits(index)`, for a test monotone in bytes (binary search).

        On this front more bytes means less KL, so it is the exact proxy optimum under the test.
        """
        lo, hi = 0, len(self) - 1
        if not fits(lo):
            return None
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if fits(mid):
                lo = mid
            else:
                hi = mid - 1
        return lo


def exact_front(problem: SearchProblem) -> ProxyFront:
    kl = np.zeros(1)
    nbytes = np.zeros(1, dtype=np.int64)
    parents: list[np.ndarray] = []
    picks: list[np.ndarray] = []
    for g in problem.groups:
        k = len(g.choices)
        cand_kl = (kl[:, None] + np.asarray(g.kl)[None, :]).ravel()
        cand_bytes = (nbytes[:, None] + np.asarray(g.weight_bytes, dtype=np.int64)[None, :]).ravel()
        order = np.lexsort((cand_kl, cand_bytes))  # bytes ascending, then KL ascending
        sorted_kl = cand_kl[order]
        prev_best = np.concatenate([[np.inf], np.minimum.accumulate(sorted_kl)[:-1]])
        keep = order[sorted_kl < prev_best]  # strictly better KL than anything no larger
        kl, nbytes = cand_kl[keep], cand_bytes[keep]
        parents.append(keep // k)
        picks.append((keep % k).astype(np.int16))
    # Walk the back-pointers from each final point to recover its choices.
    n = len(kl)
    choices = np.empty((n, len(problem.groups)), dtype=np.int16)
    idx = np.arange(n)
    for stage in range(len(problem.groups) - 1, -1, -1):
        choices[:, stage] = picks[stage][idx]
        idx = parents[stage][idx]
    return ProxyFront(nbytes, kl, choices)
