"""Multi-objective search over per-layer quantization plans.

Follow one `autoquant search --budget 24GB` through the package:

    request.py     SearchRequest: what a search takes, its defaults, validate_request()
    run.py         run_search(): the orchestration, step by step (setup, profiling, study, measurement)
    objectives.py  SearchProblem: tie groups, their choices, per-choice KL / bytes / seconds
    dp.py          exact_front(): the exact Pareto front of the additive proxy (knapsack DP)
    study.py       SearchStudy: Optuna storage (SQLite / any URL), NSGA-II, seeding, resume
    select.py      the budgets applied: reachable?, the feasible front, which plans to measure,
                   the recommendation rule, the NoPlanFitsError messages
    front.py       pareto_mask, hypervolume_2d, ParetoFront / FrontPlan
    result.py      SearchResult: what run.py fills and report.py renders
    report.py      the table, notes, --json, front.json / plan.json / front.png

Budgets and a plan's costs are `autoquant.costs`'s; measured quality is `autoquant.quality`'s
(the meter `autoquant evaluate` uses); run directories are named by `autoquant.runs`.
"""

from autoquant.costs import Budgets, PlanCosts
from autoquant.quality import DEFAULT_EVAL_TOKENS, Measurement
from autoquant.search.dp import ProxyFront, exact_front
from autoquant.search.front import FrontPlan, ParetoFront, hypervolume_2d, pareto_mask
from autoquant.search.objectives import SearchProblem, TieGroup
from autoquant.search.report import print_report, to_json
from autoquant.search.request import DEFAULT_MEASURE, DEFAULT_TRIALS, SearchRequest
from autoquant.search.result import SearchResult
from autoquant.search.run import run_search
from autoquant.search.study import DEFAULT_SAMPLER, SAMPLERS, SearchStudy

__all__ = [
    "Budgets", "DEFAULT_EVAL_TOKENS", "DEFAULT_MEASURE", "DEFAULT_SAMPLER", "DEFAULT_TRIALS", "FrontPlan",
    "Measurement", "ParetoFront", "PlanCosts", "ProxyFront", "SAMPLERS", "SearchProblem",
    "SearchRequest", "SearchResult", "SearchStudy", "TieGroup", "exact_front", "hypervolume_2d",
    "pareto_mask", "print_report", "run_search", "to_json",
]
