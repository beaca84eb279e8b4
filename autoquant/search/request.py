"""A search request: everything `autoquant search` takes, its defaults and its validation.

Errors name the request's fields (`{batch}`, `{eval_tokens}`, ...; see `autoquant.errors`);
the CLI maps them to its flags.
"""

from __future__ import annotations

from dataclasses import dataclass

from autoquant.costs import Budgets
from autoquant.engines import default_engine
from autoquant.errors import UserError
from autoquant.hardware.base import RUNTIMES
from autoquant.quality import DEFAULT_EVAL_TOKENS
from autoquant.runs import DEFAULT_RUNS_DIR
from autoquant.search.study import DEFAULT_SAMPLER, SAMPLERS
from autoquant.space import SearchSpace

DEFAULT_TRIALS = 1000
DEFAULT_MEASURE = 6
MIN_EVAL_TOKENS = 64


@dataclass
class SearchRequest:
    """Everything `autoquant search` takes; the CLI fills it from flags."""

    budgets: Budgets
    model: str | None = None
    hardware: str | None = None
    batch: int = 1
    context: int = 4096
    space: str | None = None
    trials: int = DEFAULT_TRIALS
    study: str | None = None
    storage: str | None = None
    calib: str | None = None
    eval: str | None = None
    eval_tokens: int = DEFAULT_EVAL_TOKENS
    measure_plans: int = DEFAULT_MEASURE
    runs_dir: str = DEFAULT_RUNS_DIR
    sampler: str = DEFAULT_SAMPLER
    seed: int | None = 0
    progress: bool = True
    runtime: str = "graphs"  # how it will run (CUDA graphs or eager): the latency model's rest of the forward
    # A directory where measured plans are shared with other searches of the model
    # (autoquant.search.measured_plans); None: only this study's own measurements are reused.
    shared_measurements: str | None = None
    engine: str | None = None  # where the plan will run (the space keeps to what it loads); None: default_engine
    quantizers: tuple[str, ...] | None = None  # only these of the space's quantizers; None: all it allows

    def __post_init__(self) -> None:
        # The one place the default applies: llama.cpp for a space of GGUF block formats, else vLLM.
        if self.engine is None:
            self.engine = default_engine(space=self.space)


def default_study_name(space: SearchSpace, batch: int, context: int) -> str:
    return f"{space.name}-b{batch}-c{context}"


def validate_request(req: SearchRequest) -> None:
    """UserError for values no search can use, before anything is loaded."""
    if req.batch < 1 or req.context < 1:
        raise UserError(f"{{batch}} and {{context}} must be at least 1 (got {req.batch}, {req.context})",
                        params=("batch", "context"))
    if req.trials < 0:
        raise UserError(f"{{trials}} must be 0 or more (got {req.trials})", params=("trials",))
    if req.eval_tokens < MIN_EVAL_TOKENS:
        raise UserError(f"{{eval_tokens}} must be at least {MIN_EVAL_TOKENS} (got {req.eval_tokens})",
                        params=("eval_tokens",))
    if req.measure_plans < 1:
        raise UserError(f"{{measure_plans}} must be at least 1 (got {req.measure_plans})", params=("measure_plans",))
    if req.runtime not in RUNTIMES:
        raise UserError(f"{{runtime}} must be one of {', '.join(RUNTIMES)} (got {req.runtime!r})", params=("runtime",))
    if req.sampler not in SAMPLERS:
        raise UserError(f"unknown sampler {req.sampler!r}; accepted: {', '.join(SAMPLERS)}")
