"""Multi-objective search over per-layer quantization plans.

Follow one `autoquant search --budget 24GB` through the package:

    run.py         run_search(): setup, unreachable budgets, profiling, study, measurement, files
    objectives.py  SearchProblem: tie groups, their choices, per-choice KL / bytes / seconds;
                   Budgets and PlanCosts (proxy KL, memory, latency) of a plan
    dp.py          exact_front(): the exact Pareto front of the additive proxy (knapsack DP)
    study.py       SearchStudy: Optuna storage (SQLite / any URL), NSGA-II, seeding, resume
    measure.py     PlanMeasurer: perplexity and KL of a plan on held-out text, for real
    front.py       pareto_mask, hypervolume_2d, ParetoFront / FrontPlan
    report.py      the table, --json, front.json / plan.json / front.png
"""

from autoquant.search.dp import ProxyFront, exact_front
from autoquant.search.front import FrontPlan, ParetoFront, hypervolume_2d, pareto_mask
from autoquant.search.measure import DEFAULT_EVAL_TOKENS, Measurement, PlanMeasurer
from autoquant.search.objectives import Budgets, PlanCosts, SearchProblem, TieGroup
from autoquant.search.report import print_report, to_json
from autoquant.search.run import (DEFAULT_MEASURE, DEFAULT_TRIALS, SearchRequest, SearchResult, run_search)
from autoquant.search.study import DEFAULT_SAMPLER, SAMPLERS, SearchStudy

__all__ = [
    "Budgets", "DEFAULT_EVAL_TOKENS", "DEFAULT_MEASURE", "DEFAULT_SAMPLER", "DEFAULT_TRIALS", "FrontPlan",
    "Measurement", "ParetoFront", "PlanCosts", "PlanMeasurer", "ProxyFront", "SAMPLERS", "SearchProblem",
    "SearchRequest", "SearchResult", "SearchStudy", "TieGroup", "exact_front", "hypervolume_2d",
    "pareto_mask", "print_report", "run_search", "to_json",
]
