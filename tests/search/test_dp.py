"""The DP front is exactly the Pareto front of the additive proxy (checked by brute force)."""

from __future__ import annotations

import itertools

import numpy as np
from search_fixtures import problem, tiny_shape

from autoquant.search.dp import exact_front
from autoquant.search.front import pareto_mask


def test_dp_front_equals_brute_force() -> None:
    p = problem(tiny_shape(), latency=False)  # 9 groups, 3^8 * 2 plans
    plans = np.array(list(itertools.product(*[range(len(g.choices)) for g in p.groups])))
    kl = sum(np.asarray(g.kl)[plans[:, i]] for i, g in enumerate(p.groups))
    nbytes = sum(np.asarray(g.weight_bytes)[plans[:, i]] for i, g in enumerate(p.groups))
    # 2-D front of all plans: by bytes, keep each plan strictly better in KL than all cheaper ones.
    order = np.lexsort((kl, nbytes))
    best_before = np.concatenate([[np.inf], np.minimum.accumulate(kl[order])[:-1]])
    on_front = order[kl[order] < best_before]
    brute = np.stack([kl[on_front], nbytes[on_front]], axis=1)
    assert pareto_mask(brute).all()  # and the sweep agrees with the generic dominance test
    front = exact_front(p)
    assert len(front) == len(brute)
    np.testing.assert_allclose(front.kl, brute[:, 0], rtol=1e-12)
    np.testing.assert_array_equal(front.weight_bytes, brute[:, 1].astype(np.int64))


def test_dp_choices_reproduce_their_costs() -> None:
    p = problem(tiny_shape(), latency=False, seed=4)
    front = exact_front(p)
    for i in range(len(front)):
        c = front.choices[i].tolist()
        assert p.weight_bytes(c) == front.weight_bytes[i]
        assert abs(p.proxy_kl(c) - front.kl[i]) < 1e-12
    assert np.all(np.diff(front.weight_bytes) > 0) and np.all(np.diff(front.kl) < 0)
    assert front.kl[-1] == 0.0  # the fp16 end


def test_spread_includes_both_ends() -> None:
    p = problem(tiny_shape(), latency=False)
    front = exact_front(p)
    idx = front.spread(5)
    assert idx[0] == 0 and idx[-1] == len(front) - 1 and len(idx) <= 5
