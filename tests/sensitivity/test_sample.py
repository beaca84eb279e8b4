"""The measured sample: spans the proxy range, every format and role; deterministic."""

from __future__ import annotations

from collections import Counter

from autoquant.sensitivity.sample import choose_sample

ROLES = ("q", "k", "v", "o", "gate", "up", "down")
FORMATS = ("int8-pc-sym", "int4-g64-asym", "int4-g128-asym")


def _pairs():
    proxy, roles = {}, {}
    for b in range(30):
        for r_i, role in enumerate(ROLES):
            name = f"b{b}.{role}"
            roles[name] = role
            for f_i, fmt in enumerate(FORMATS):
                proxy[(name, fmt)] = (10.0 ** (-6 + 2.5 * min(f_i, 1) + 0.2 * f_i)) * (1 + r_i) * (1 + b / 10)
    return proxy, roles


def test_size_formats_roles_and_range():
    proxy, roles = _pairs()
    chosen = choose_sample(proxy, roles, 48)
    assert len(chosen) == len(set(chosen)) == 48
    fmt_count = Counter(f for _, f in chosen)
    assert all(fmt_count[f] >= 3 for f in FORMATS)
    assert set(roles[n] for n, _ in chosen) == set(ROLES)
    ordered = sorted(proxy.values())
    values = [proxy[p] for p in chosen]
    assert min(values) == ordered[0] and max(values) == ordered[-1]  # both extremes
    # spread: every decile of the proxy distribution is represented
    deciles = [ordered[int(i * len(ordered) / 10)] for i in range(11)[:-1]] + [ordered[-1] * 1.01]
    assert all(any(lo <= v < hi for v in values) for lo, hi in zip(deciles, deciles[1:]))


def test_deterministic_and_all_when_small():
    proxy, roles = _pairs()
    assert choose_sample(proxy, roles, 40, seed=1) == choose_sample(proxy, roles, 40, seed=1)
    assert len(choose_sample(proxy, roles, 10_000)) == len(proxy)
    assert len(choose_sample(proxy, roles, 2)) == 2
