"""The graph-timed choice of tl.dot launches: which configs it re-times, and its records."""

from __future__ import annotations

import kernel_env  # noqa: F401  (interpreter setup before `kernels` is imported)
import triton

from autoquant.kernels import graph_pick


def _cfg(bn: int, split: int, warps: int = 2) -> triton.Config:
    return triton.Config({"BLOCK_N": bn, "BLOCK_K": 256, "SPLIT_K": split, "NG": 2}, num_warps=warps, num_stages=3)


def test_candidates_are_the_tuners_best_then_the_close_ones() -> None:
    a, b, c, d, e = _cfg(64, 1), _cfg(64, 2), _cfg(32, 1, 1), _cfg(64, 4), _cfg(128, 1, 4)
    timings = {a: [10.0, 9.9, 10.1], b: [10.5, 10.4, 10.6], c: [10.2, 10.1, 10.3], d: [10.99, 11, 11], e: [13.0, 13, 13]}
    got = graph_pick.candidates(timings, a)
    assert [str(x) for x in got] == [str(a), str(c), str(b)]  # by time, at most CANDIDATES
    assert len(got) == graph_pick.CANDIDATES
    assert str(e) not in map(str, graph_pick.candidates(timings, a))  # 30% slower: not re-timed
    # bare floats as timings, and the tuner's pick first even if another timed faster since
    assert [str(x) for x in graph_pick.candidates({a: 10.0, b: 9.5}, a)] == [str(a), str(b)]
    assert [str(x) for x in graph_pick.candidates(None, a)] == [str(a)]  # timings of another problem


def test_config_records_round_trip() -> None:
    c = _cfg(64, 8)
    back = graph_pick.config_of(graph_pick.config_record(c))
    assert back.kwargs == c.kwargs and back.num_warps == c.num_warps and back.num_stages == c.num_stages
    assert str(back) == str(c)
