"""`autoquant search`: the Pareto front of mixed-precision plans within budgets, and a recommendation.

Thin: parses the flags into a `SearchRequest` and calls `autoquant.search.run_search`.
Exit codes: 0 a plan is recommended; 2 bad input; 3 no plan fits the budgets (the message
names the smallest memory or latency reachable).
"""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

from autoquant.costs import parse_latency, parse_quality, parse_size
from autoquant.cli._common import (BatchOpt, ContextOpt, EngineOpt, JsonOpt, ModelOpt, QuantizersOpt, RuntimeOpt, console,
                                  err_console, split_names)
from autoquant.errors import UserError
from autoquant.search import (DEFAULT_EVAL_TOKENS, DEFAULT_MEASURE, DEFAULT_SAMPLER, DEFAULT_TRIALS, SAMPLERS,
                              Budgets, SearchRequest, print_report, run_search, to_json)


# The library names the request's fields; these are the flags that differ from `--field-name`.
FLAGS = {"memory_budget": "--budget", "measure_plans": "--measure"}


def register(app: typer.Typer) -> None:
    app.command("search")(search)


def search(
    budget: Annotated[str, typer.Option("--budget", help="Total serving-memory budget (weights + KV cache + activations + overhead), e.g. 24GB, 80GiB.")],
    model: ModelOpt = None,
    latency_budget: Annotated[Optional[str], typer.Option("--latency-budget", help="Most seconds a decode step may take, e.g. 30ms.")] = None,
    quality_budget: Annotated[Optional[str], typer.Option("--quality-budget", help="Most quality lost vs fp16: kl=0.05 (nats/token) or ppl=+3% (measured).")] = None,
    hardware: Annotated[Optional[str], typer.Option("--hardware", help="GPU name (h100, a100, ...; see `autoquant hardware list`) or a profile JSON. Default: this machine's GPU, else h100 (estimated).")] = None,
    batch: BatchOpt = 1,
    context: ContextOpt = 4096,
    runtime: RuntimeOpt = "graphs",
    space: Annotated[Optional[str], typer.Option("--space", help="Search space YAML, or a bundled name (default, aggressive).")] = None,
    trials: Annotated[int, typer.Option("--trials", "-n", help="Trials to add to the study (proxy-scored, milliseconds each).")] = DEFAULT_TRIALS,
    study: Annotated[Optional[str], typer.Option("--study", help="Study name; the same name resumes it and adds trials. Default: <space>-b<batch>-c<context> (plus a setup digest if that study holds another setup).")] = None,
    storage: Annotated[Optional[str], typer.Option("--storage", help="Optuna storage URL (sqlite:///..., postgresql://...). Default: runs/<model>/<study>/study.db.")] = None,
    calib: Annotated[Optional[str], typer.Option("--calib", help="Calibration text file: the profile, and the gptq/awq layers of measured plans (recorded in plan.json). Default: embedded wikitext-2 validation.")] = None,
    eval_file: Annotated[Optional[str], typer.Option("--eval", help="Held-out text to measure plans on. Default: embedded wikitext-2 test.")] = None,
    eval_tokens: Annotated[int, typer.Option("--eval-tokens", help="Tokens of evaluation text per measurement (~2.7 ms a token for SmolLM2 on a CPU).")] = DEFAULT_EVAL_TOKENS,
    measure: Annotated[int, typer.Option("--measure", help="Front plans to measure for real, spread over memory (plus 3 uniform baselines, 4 with gptq).")] = DEFAULT_MEASURE,
    runs_dir: Annotated[str, typer.Option("--runs-dir", help="Where study.db, front.json, plan.json and front.png go.")] = "runs",
    sampler: Annotated[str, typer.Option("--sampler", help=f"Optuna sampler: {', '.join(SAMPLERS)}.")] = DEFAULT_SAMPLER,
    seed: Annotated[int, typer.Option("--seed", help="Sampler seed.")] = 0,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="No progress bars.")] = False,
    as_json: JsonOpt = False,
    engine: EngineOpt = None,
    quantizers: QuantizersOpt = None,
    export_dir: Annotated[Optional[str], typer.Option("--export", help="Also export the recommended plan as a checkpoint for --engine into this new directory (see `autoquant export`).")] = None,
) -> None:
    """Search per-layer formats for the Pareto front of quality, memory and latency; recommend one plan.

    Profiles layer sensitivity first (cached), runs an Optuna study seeded with exact solutions of the additive proxy, then measures front plans for real on held-out text. Exit codes: 0 ok, 2 bad input, 3 no plan fits the budgets.
    """
    budgets = Budgets(
        memory_bytes=parse_size(budget, "--budget"),
        latency_s=None if latency_budget is None else parse_latency(latency_budget, "--latency-budget"),
        quality=None if quality_budget is None else parse_quality(quality_budget),
    )
    request = SearchRequest(
        budgets=budgets, model=model, hardware=hardware, batch=batch, context=context, space=space,
        trials=trials, study=study, storage=storage, calib=calib, eval=eval_file, eval_tokens=eval_tokens,
        measure_plans=measure, runs_dir=runs_dir, sampler=sampler, seed=seed, progress=not no_progress,
        engine=engine, runtime=runtime, quantizers=split_names(quantizers),
    )
    if export_dir is not None:
        _check_export_dir(export_dir)  # before minutes of search, not after
    try:
        result = run_search(request)
    except UserError as e:
        raise e.with_flags(FLAGS) from None
    if as_json:
        console.print_json(json.dumps(to_json(result)))
    else:
        print_report(result, console)
    if export_dir is not None:
        _export_recommended(result, export_dir, model, request.engine, no_progress)


def _check_export_dir(out: str) -> None:
    from pathlib import Path

    from autoquant.errors import UserError

    if Path(out).exists() and any(Path(out).iterdir()):
        raise UserError(f"--export directory {out} is not empty; choose a new one")


def _export_recommended(result, out: str, model: str | None, engine: str, no_progress: bool) -> None:
    """`--export DIR`: the recommended plan through the same call `autoquant export` makes."""
    from autoquant.export import export_plan

    path = export_plan(result.recommended.plan, out, engine=engine, model=model, progress=not no_progress)
    err_console.print(f"exported the recommended plan to {path} ({engine})")
