"""The decisions of a search: which plans are on the front, which get measured, which is recommended."""

from __future__ import annotations

import pytest
from search_fixtures import problem, smollm2_shape, tiny_shape

from autoquant.costs import Budgets, QualityBudget
from autoquant.errors import NoPlanFitsError
from autoquant.search.dp import exact_front
from autoquant.search.front import FrontPlan, ParetoFront
from autoquant.search.select import check_reachable, feasible_front, pick_to_measure, recommend


def _measured(kl: float, ppl_change: float) -> dict:
    return {"perplexity": 10 * (1 + ppl_change), "kl": kl, "ppl_change": ppl_change, "tokens": 100,
            "text": "t", "text_fingerprint": "f", "seconds": 0.0, "eval_tokens": 128}


def _front_plans(p, n: int = 6) -> list[FrontPlan]:
    front = exact_front(p)
    out = []
    for j, i in enumerate(front.spread(n)):
        choice = front.choices[i].tolist()
        out.append(FrontPlan(p.plan(choice), p.costs(choice), j))
    return out


def test_recommend_takes_best_measured_quality_within_every_budget() -> None:
    p = problem(tiny_shape())
    plans = _front_plans(p)  # memory ascending, proxy KL descending
    for k, fp in enumerate(plans):
        fp.measured = _measured(kl=0.1 / (k + 1), ppl_change=0.05 / (k + 1))
    plans[-2].measured = None  # unmeasured plans are never recommended
    front = ParetoFront(plans)
    big = Budgets(10**12)
    assert recommend(front, big) is plans[-1]
    tight = Budgets(plans[2].costs.memory_bytes)
    assert recommend(front, tight) is plans[2]
    # A ppl budget judged on the measured change: +2.0% admits only the plans at or below it.
    q = Budgets(10**12, quality=QualityBudget("ppl", 0.02))
    assert recommend(front, q) is plans[-1]
    impossible = Budgets(plans[1].costs.memory_bytes, quality=QualityBudget("kl", 0.001))
    assert recommend(front, impossible) is None


def test_pick_to_measure_keeps_both_ends_and_spreads_over_the_knee() -> None:
    p = problem(smollm2_shape())
    front = exact_front(p)
    choices = [front.choices[i].tolist() for i in front.spread(60)]
    picks = pick_to_measure(p, Budgets(10**12), choices, 6)
    assert len(picks) == 6
    mem = [p.costs(choices[i]).memory_bytes for i in picks]
    assert mem == sorted(mem)
    assert picks[0] == min(range(len(choices)), key=lambda i: p.costs(choices[i]).memory_bytes)
    assert p.costs(choices[picks[-1]]).proxy_kl == 0.0  # the best-quality end
    # With a quality budget, the least-memory plan meeting it is among the picks.
    limit = p.costs(choices[30]).proxy_kl
    with_q = pick_to_measure(p, Budgets(10**12, quality=QualityBudget("kl", limit)), choices, 4)
    ok = [i for i in range(len(choices)) if p.costs(choices[i]).proxy_kl <= limit]
    assert min(ok, key=lambda i: p.costs(choices[i]).memory_bytes) in with_q


def test_feasible_front_filters_budgets_and_dominated_plans() -> None:
    p = problem(tiny_shape())
    front = exact_front(p)
    choices = [front.choices[i].tolist() for i in range(len(front))]
    choices.append(choices[0])  # a duplicate
    worst = [len(g.choices) - 1 for g in p.groups]
    choices.append(worst)
    budget = p.costs(choices[len(front) // 2]).memory_bytes
    idx = feasible_front(p, Budgets(budget), choices)
    assert idx and all(p.costs(choices[i]).memory_bytes <= budget for i in idx)
    assert len({tuple(choices[i]) for i in idx}) == len(idx)


def test_unreachable_memory_names_the_smallest_plan() -> None:
    p = problem(tiny_shape())
    smallest = p.costs(p.smallest_choice()).memory_bytes
    check_reachable(p, Budgets(smallest), "h100")  # exactly reachable: fine
    with pytest.raises(NoPlanFitsError, match="smallest plan of space 'small' needs") as e:
        check_reachable(p, Budgets(smallest - 1), "h100")
    assert e.value.exit_code == 3
    # the library names its parameters; the CLI's message names its flags (tests/search/test_cli_search.py)
    assert "raise memory_budget, or lower batch / context" in str(e.value)
    assert "raise --budget, or lower --batch / --context" in e.value.with_flags({"memory_budget": "--budget"}).for_cli()

