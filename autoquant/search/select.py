"""Which plans a search keeps, measures and recommends, judged against the budgets.

    check_reachable     before profiling: budgets no plan of the space can meet
    feasible_front      the non-dominated trials within the memory and latency budgets
    pick_to_measure     up to K of them to measure for real, spread along the front
    recommend           the best measured quality among plans meeting every budget
    nothing_feasible, no_measured_fit    the NoPlanFitsError when nothing is left

Errors name the budgets as parameters (`{memory_budget}`, ...; see `autoquant.errors`).
"""

from __future__ import annotations

import numpy as np

from autoquant.costs import Budgets, format_bytes, format_seconds
from autoquant.errors import NoPlanFitsError
from autoquant.memory import estimate_memory
from autoquant.quality import Measurement
from autoquant.search.dp import ProxyFront
from autoquant.search.front import FrontPlan, ParetoFront, hypervolume_ratio, pareto_mask
from autoquant.search.objectives import SearchProblem
from autoquant.search.study import proxy_points


def check_reachable(problem: SearchProblem, budgets: Budgets, hardware: str) -> None:
    """Raise NoPlanFitsError naming the least memory / latency the space can reach."""
    smallest = problem.plan(problem.smallest_choice())
    mem = estimate_memory(problem.shape, smallest, problem.batch, problem.context)
    if mem.total_bytes > budgets.memory_bytes:
        raise NoPlanFitsError(
            f"no plan fits {format_bytes(budgets.memory_bytes)}: the smallest plan of space "
            f"{problem.space.name!r} needs {format_bytes(mem.total_bytes)} at batch {problem.batch}, "
            f"context {problem.context} (weights {format_bytes(mem.weights_bytes)}, KV cache "
            f"{format_bytes(mem.kv_cache_bytes)}, activations and overhead "
            f"{format_bytes(mem.activation_bytes + mem.overhead_bytes)}); raise {{memory_budget}}, or lower {{batch}} / {{context}}",
            params=("memory_budget", "batch", "context"),
        )
    if budgets.latency_s is not None:
        fastest = problem.costs(problem.fastest_choice())
        if fastest.decode_s > budgets.latency_s:
            label = "estimated" if fastest.latency_estimated else "measured"
            raise NoPlanFitsError(
                f"no plan meets the latency budget {format_seconds(budgets.latency_s)}: the fastest plan of "
                f"space {problem.space.name!r} takes {format_seconds(fastest.decode_s)} a decode step on "
                f"{hardware} ({label}); raise {{latency_budget}} or lower {{batch}} / {{context}}",
                params=("latency_budget", "batch", "context"),
            )


def feasible_front(problem: SearchProblem, budgets: Budgets, choices: list[list[int]]) -> list[int]:
    """Indices of the non-dominated plans among those meeting the memory and latency budgets
    (the quality budget is judged on measured values later). Duplicates collapse."""
    rows, idx = [], []
    for i, c in enumerate(choices):
        costs = problem.costs(c)
        if not costs.within_memory_and_latency(budgets):
            continue
        rows.append([costs.proxy_kl, costs.memory_bytes] + ([costs.decode_s] if problem.rest else []))
        idx.append(i)
    if not rows:
        return []
    mask = pareto_mask(np.asarray(rows))
    return [i for i, keep in zip(idx, mask) if keep]


KL_FLOOR = 1e-4  # nats: below this, measured KL differences are mostly noise at a few thousand tokens


def pick_to_measure(problem: SearchProblem, budgets: Budgets, choices: list[list[int]], k: int) -> list[int]:
    """Up to k front plans to measure, always the best proxy quality and the least memory.

    The rest are spread evenly along the front's curve in (memory, log proxy KL), both scaled
    to [0, 1], so they land where quality changes (the knee), not in the flat 16-bit end.
    With a quality budget, the least-memory plan whose proxy meets it is taken too: the
    likeliest recommendation when the quality budget binds.
    """
    if not choices:
        return []
    costs = [problem.costs(c) for c in choices]
    order = sorted(range(len(choices)), key=lambda i: (costs[i].memory_bytes, costs[i].proxy_kl))
    picks = [order[0], min(order, key=lambda i: (costs[i].proxy_kl, costs[i].memory_bytes))]
    limit = budgets.proxy_kl_limit()
    if limit is not None:
        ok = [i for i in order if costs[i].proxy_kl <= limit]
        if ok:
            picks.append(ok[0])
    x = np.array([costs[i].memory_bytes for i in order], dtype=float)
    y = np.log10(np.array([costs[i].proxy_kl for i in order]) + KL_FLOOR)
    xs = (x - x.min()) / max(np.ptp(x), 1e-30)
    ys = (y - y.min()) / max(np.ptp(y), 1e-30)
    arc = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(xs), np.diff(ys)))])
    for target in np.linspace(0.0, arc[-1], max(k, 2))[1:-1]:
        if len(set(picks)) >= k:
            break
        picks.append(order[int(np.argmin(np.abs(arc - target)))])
    unique = list(dict.fromkeys(picks))[:max(k, 2)]
    return sorted(unique, key=lambda i: costs[i].memory_bytes)


def feasible_hv_ratio(problem: SearchProblem, budgets: Budgets, proxy_front: ProxyFront,
                      choices: list[list[int]]) -> float:
    """Hypervolume of the trials / of the exact DP front, in (proxy KL, weight bytes), both
    restricted to plans within the memory budget: how close the search came to the optimum of
    the problem it was asked to solve."""
    def fits(i: int) -> bool:
        return problem.costs(proxy_front.choices[i].tolist()).memory_bytes <= budgets.memory_bytes

    last = proxy_front.last_within(fits)
    if last is None:
        return float("nan")
    limit = int(proxy_front.weight_bytes[last])
    exact = proxy_front.points()[: last + 1]
    pts = proxy_points(problem, choices)
    return hypervolume_ratio(pts[pts[:, 1] <= limit], exact)


def meets_quality(m: Measurement, budgets: Budgets) -> bool:
    q = budgets.quality
    if q is None:
        return True
    value = m.kl if q.metric == "kl" else m.ppl_change
    return value <= q.limit


def recommend(front: ParetoFront, budgets: Budgets) -> FrontPlan | None:
    """The best measured quality (lowest KL, then least memory) among plans meeting every budget."""
    ok = [
        p for p in front.plans
        if p.measured is not None and p.costs.within_memory_and_latency(budgets)
        and meets_quality(Measurement.from_dict(p.measured), budgets)
    ]
    if not ok:
        return None
    return min(ok, key=lambda p: (p.measured["kl"], p.costs.memory_bytes))


def nothing_feasible(problem: SearchProblem, budgets: Budgets, hardware: str) -> NoPlanFitsError:
    """No trial meets the memory (and latency) budget: what the space reaches instead."""
    smallest = problem.costs(problem.smallest_choice())
    parts = [f"no searched plan meets memory {format_bytes(budgets.memory_bytes)}"]
    if budgets.latency_s is not None:
        fastest = problem.costs(problem.fastest_choice())
        parts.append(f"and decode latency {format_seconds(budgets.latency_s)} together")
        return NoPlanFitsError(
            "; ".join(parts)
            + f"; smallest reachable memory {format_bytes(smallest.memory_bytes)}, fastest reachable decode "
            f"{format_seconds(fastest.decode_s)} on {hardware}: raise a budget or add {{trials}}",
            params=("trials",),
        )
    return NoPlanFitsError("; ".join(parts) + f"; smallest reachable memory {format_bytes(smallest.memory_bytes)}")


def no_measured_fit(front: ParetoFront, budgets: Budgets, problem: SearchProblem, proxy_front: ProxyFront,
                     path: str) -> NoPlanFitsError:
    """No measured plan meets the quality budget: the best measured, and what the proxy says it needs."""
    measured = [p for p in front.plans if p.measured is not None]
    best = min(measured, key=lambda p: p.measured["kl"])
    q = budgets.quality
    value = f"KL {best.measured['kl']:.4f}" if q and q.metric == "kl" else f"ppl {best.measured['ppl_change'] * 100:+.2f}%"
    need = ""
    limit = budgets.proxy_kl_limit()
    meets = np.nonzero(proxy_front.kl <= limit)[0] if limit is not None else []
    if len(meets):
        mem = problem.costs(proxy_front.choices[int(meets[0])].tolist()).memory_bytes
        need = f"; by the proxy, {q} needs about {format_bytes(mem)} (estimated, not measured)"
    return NoPlanFitsError(
        f"no measured plan meets the quality budget {q} within memory {format_bytes(budgets.memory_bytes)}"
        + (f" and latency {format_seconds(budgets.latency_s)}" if budgets.latency_s else "")
        + f": the best measured is {value} at {format_bytes(best.costs.memory_bytes)}{need}; "
        f"raise {{memory_budget}} or loosen {{quality_budget}} (front written to {path})",
        params=("memory_budget", "quality_budget"),
    )
