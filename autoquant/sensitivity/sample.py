"""Which (layer, format, quantizer) entries to measure when measuring all of them costs too much.

The sample exists to calibrate the proxy: fit its scale to KL and check its ranking. So it
should span the whole range of proxy values, every format and every role, not cluster
where most pairs are. Two steps, both deterministic for a given seed:

  1. per variant (format and quantizer: a key's fields after the layer), `per_format` entries
     at evenly spaced quantiles of that variant's proxies (the extremes included), so each
     variant's fit and ranking can be checked;
  2. the rest stratified over the proxy's quantiles across all pairs: equal-count bins
     of the sorted proxies, one pair per bin, picking in each bin the pair whose role and
     format are least represented so far (ties broken by a seeded shuffle).
"""

from __future__ import annotations

import random
from collections import Counter

import numpy as np

Pair = tuple[str, ...]  # (layer, format[, quantizer])


def choose_sample(
    proxy: dict[Pair, float], roles: dict[str, str], size: int, *, per_format: int = 3, seed: int = 0
) -> list[Pair]:
    """`size` pairs of `proxy`'s keys (all of them if size >= len), in proxy order."""
    pairs = sorted(proxy, key=lambda p: (proxy[p], p))
    if size >= len(pairs):
        return pairs
    rng = random.Random(seed)
    chosen: list[Pair] = []
    taken: set[Pair] = set()

    formats = sorted({p[1:] for p in pairs})
    reserve = min(per_format, size // len(formats))  # 0 when the sample is smaller than the formats
    for fmt in formats if reserve else []:
        mine = [p for p in pairs if p[1:] == fmt]
        for q in np.linspace(0, len(mine) - 1, num=min(reserve, len(mine))):
            p = mine[int(round(q))]
            if p not in taken:
                chosen.append(p)
                taken.add(p)

    rest = [p for p in pairs if p not in taken]
    n_bins = max(0, size - len(chosen))
    role_count = Counter(roles.get(p[0], "other") for p in chosen)
    fmt_count = Counter(p[1:] for p in chosen)
    for bin_ in np.array_split(np.arange(len(rest)), n_bins) if n_bins else []:
        if len(bin_) == 0:
            continue
        candidates = [rest[i] for i in bin_]
        rng.shuffle(candidates)
        best = min(candidates, key=lambda p: (role_count[roles.get(p[0], "other")] + fmt_count[p[1:]]))
        chosen.append(best)
        role_count[roles.get(best[0], "other")] += 1
        fmt_count[best[1:]] += 1
    return sorted(chosen, key=lambda p: (proxy[p], p))
