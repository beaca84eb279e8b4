"""One search, from a `SearchRequest` to a recommended plan on disk: the orchestration.

    1. model shape, space, latency model, texts      (bad input fails here, in seconds)  request.py
    2. budgets that no plan of the space can meet     -> NoPlanFitsError before any profiling  select.py
    3. sensitivity table                              profile_sensitivity (cached, resumable)
    4. problem + exact DP front of the proxy          objectives.py, dp.py
    5. Optuna study: open / resume, seed, N trials    study.py
    6. front of the feasible trials; measure up to K  select.py; autoquant.quality (plus uniform
       of them for real, spread over memory           baselines)
    7. recommend: best measured quality within every budget (select.py); write front.json,
       plan.json, front.png under runs/<model>/<study>/ (report.py, autoquant.runs)
"""

from __future__ import annotations

import time
from typing import Any

from autoquant.costs import Budgets, plan_costs
from autoquant.data import TextSource, calibration_text, evaluation_text
from autoquant.engines import get_engine, restrict_space
from autoquant.errors import UserError
from autoquant.formats import QuantFormat
from autoquant.hardware import latency_model_for
from autoquant.memory import ModelShape
from autoquant.models import ModelSource, fingerprint, resolve_model
from autoquant.plan import Plan, parse_uniform_label, uniform_label
from autoquant.progress import Progress
from autoquant.quality import Measurement, QualityMeter, load_meter
from autoquant.runs import search_run_dir
from autoquant.search import report
from autoquant.search.dp import exact_front
from autoquant.search.front import FrontPlan, ParetoFront
from autoquant.search.measured_plans import MeasuredPlans, measured_plans_path
from autoquant.search.objectives import SearchProblem
from autoquant.search.request import SearchRequest, default_study_name, validate_request
from autoquant.search.result import SearchResult
from autoquant.search.select import (check_reachable, feasible_front, feasible_hv_ratio, no_measured_fit,
                                     nothing_feasible, pick_to_measure, recommend)
from autoquant.search.study import SearchStudy, default_storage, encode_choice, open_search_study
from autoquant.space import SearchSpace, load_space, restrict_quantizers

BASELINES = ("fp16", "int8-pc-sym", "int4-g128-asym")
GPTQ_BASELINE = uniform_label("int4-g128-asym", "gptq")  # what int4 users deploy: the bar a mixed plan must clear
GGUF_BASELINES = ("fp16", "q8_0", "q4_0")  # what llama.cpp users pick by hand


def baselines_for(space: SearchSpace) -> tuple[str, ...]:
    """The uniform plans a front is compared with: those the space's users would otherwise run
    (uniform int4-g128 by gptq too when the space lets the search choose gptq)."""
    if any(f.is_gguf for f in space.all_formats()):
        return GGUF_BASELINES
    return BASELINES + ((GPTQ_BASELINE,) if "gptq" in space.all_quantizers() else ())


class _ZeroKL:
    """Before profiling: memory and latency do not depend on the sensitivity table."""

    def best_quantizer(self, layer: str, fmt: QuantFormat | str, allowed) -> tuple[str, float]:
        return "rtn", 0.0


def run_search(req: SearchRequest) -> SearchResult:
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    validate_request(req)
    source = resolve_model(req.model)
    space = restrict_space(load_space(req.space), get_engine(req.engine))  # engine: its formats only
    space = restrict_quantizers(space, req.quantizers)
    shape = ModelShape.from_source(source)
    latency_model = latency_model_for(req.hardware, shape, req.runtime)  # a built-in profile only where it covers the model
    calib = calibration_text(req.calib)
    eval_text = evaluation_text(req.eval, calib)
    budgets = req.budgets

    bare = SearchProblem.build(shape, space, _ZeroKL(), latency_model, batch=req.batch, context=req.context,
                               model_name=source.display)
    check_reachable(bare, budgets, latency_model.name)
    if not source.has_weights:
        raise UserError(
            f"{source.display} holds only a config (no weights): search profiles and measures the model, "
            "so it needs the weights (`autoquant estimate` plans memory without them)"
        )
    # The storage and an existing study are checked before minutes of profiling, not after.
    model_fp = fingerprint(source)
    opened = open_search_study(
        req.study, default_study_name(space, req.batch, req.context),
        lambda name: req.storage or default_storage(search_run_dir(source, name, req.runs_dir)), bare, model_fp,
    )
    study_name, storage = opened.name, opened.storage
    run_dir = search_run_dir(source, study_name, req.runs_dir)

    # ---- 3. sensitivity --------------------------------------------------------------------------
    from autoquant.sensitivity import profile_sensitivity, save_profile

    t = time.perf_counter()
    table = profile_sensitivity(source, space, calib, progress=req.progress)
    # Beside the run, as `autoquant profile` writes it: the app shows it next to the front.
    save_profile(table, run_dir)
    timings["profile"] = time.perf_counter() - t

    # ---- 4. problem and exact proxy front ----------------------------------------------------------
    problem = SearchProblem.build(shape, space, table, latency_model, batch=req.batch, context=req.context,
                                  model_name=source.display, calibration=calib.ref)
    t = time.perf_counter()
    proxy_front = exact_front(problem)
    timings["dp"] = time.perf_counter() - t

    # ---- 5. study -------------------------------------------------------------------------------------
    study = SearchStudy(study_name, storage, problem, budgets, model_fingerprint=model_fp,
                        sampler=req.sampler, seed=req.seed)
    before = len(study.trials())
    seeded = study.seed(proxy_front)
    t = time.perf_counter()
    with Progress(req.progress and req.trials > 0) as ui:
        bar = ui.phase(f"search ({req.sampler}, proxy)", req.trials)
        study.run(req.trials, on_trial=lambda: ui.advance(bar))
    timings["search"] = time.perf_counter() - t
    records = study.trials()
    choices = [r.choice for r in records]

    # ---- 6. front and measurement ---------------------------------------------------------------------
    front_idx = feasible_front(problem, budgets, choices)
    if not front_idx:
        raise nothing_feasible(problem, budgets, latency_model.name)
    to_measure = pick_to_measure(problem, budgets, [choices[i] for i in front_idx], req.measure_plans)
    measure_set = {front_idx[i] for i in to_measure}

    t = time.perf_counter()
    plans, baselines = _measure(study, problem, records, front_idx, measure_set, source, eval_text, calib, req)
    timings["measure"] = time.perf_counter() - t
    front = ParetoFront(sorted(plans, key=lambda p: p.costs.memory_bytes), baselines)

    # ---- 7. recommend and write -------------------------------------------------------------------------
    recommended = recommend(front, budgets)
    result = SearchResult(
        request=req, model=source.display, space=space, hardware=latency_model.name,
        latency_estimated=any(p.costs.latency_estimated for p in plans), study=study_name, storage=storage,
        trials_total=len(records), trials_added=len(records) - before, seeded=seeded, front=front,
        # uniform fp16 measures as the reference itself (the meter leaves 16-bit layers as loaded)
        recommended=recommended, reference=Measurement.from_dict(baselines[0].measured), run_dir=run_dir,
        proxy_front_size=len(proxy_front),
        proxy_hv_ratio=feasible_hv_ratio(problem, budgets, proxy_front, choices),
        problem=problem, choices=choices, table_notes=list(table.notes), timings=timings,
    )
    result.notes.extend(([opened.note] if opened.note else []) + report.search_notes(result))
    if recommended is not None:
        _annotate(recommended, result, budgets)
    timings["total"] = time.perf_counter() - t0
    result.files = report.write_run(result)
    if recommended is None:
        raise no_measured_fit(front, budgets, problem, proxy_front, result.files.get("front_json", ""))
    return result


def _measure(
    study: SearchStudy, problem: SearchProblem, records: list, front_idx: list[int], measure_set: set[int],
    source: ModelSource, eval_text: TextSource, calib: TextSource, req: SearchRequest,
) -> tuple[list[FrontPlan], list[FrontPlan]]:
    """The front as FrontPlans (measured where chosen) and the measured uniform baselines.

    Every measurement is stored on the study as soon as it is made and reused by any later
    run with the same evaluation text and token count.
    """
    cached = study.measurements()
    key = (eval_text.fingerprint, req.eval_tokens)
    uniform = {label: _baseline_plan(label, problem) for label in baselines_for(problem.space)}
    todo = sum(study.baseline(_stored_as(label, plan), *key) is None for label, plan in uniform.items())
    todo += sum(_cached(cached, records[i].choice, problem.plan(records[i].choice), key) is None for i in measure_set)
    baselines, plans = [], []
    with Progress(req.progress and todo > 0) as ui:
        measurer = LazyMeter(source, eval_text, req.eval_tokens, ui, _shared(source, req), calib)
        bar = ui.phase("measuring plans (eval text)", todo)
        for label, plan in uniform.items():
            m = study.baseline(_stored_as(label, plan), *key)
            if m is None:
                m = measurer.measure(plan)
                study.store_baseline(_stored_as(label, plan), m)
                ui.advance(bar)
            costs = plan_costs(problem.shape, plan, problem.latency, problem.batch, problem.context)
            baselines.append(FrontPlan(plan, costs, None, f"uniform {label}", m))
        for i in front_idx:
            choice = records[i].choice
            fp = FrontPlan(problem.plan(choice), problem.costs(choice), records[i].number)
            if i in measure_set:
                m = _cached(cached, choice, fp.plan, key)
                if m is None:
                    m = measurer.measure(fp.plan)
                    study.record_measurement(choice, fp.costs, m, records[i].number)
                    ui.advance(bar)
                fp.measured = m
            plans.append(fp)
    return plans, baselines


def _baseline_plan(label: str, problem: SearchProblem) -> Plan:
    fmt, quantizer = parse_uniform_label(label)
    plan = Plan.uniform(fmt, problem.layers, problem.model_name, quantizer)
    if plan.calibrated:
        plan.calibration = problem.calibration
    return plan


def _stored_as(label: str, plan: Plan) -> str:
    """A baseline's key in the study: a calibrated one's with its calibration (other text, other codes)."""
    return f"{label} [{plan.quantizer_digest}]" if plan.calibrated else label


def _cached(cached: dict, choice: list[int], plan: Plan, key: tuple) -> dict | None:
    """The study's measurement of `choice`, unless it was made when the profile gave the plan's
    layers other quantizers (a choice codes formats only)."""
    m = cached.get((encode_choice(choice), *key))
    return m if m is not None and m.get("quantizers", "") == plan.quantizer_digest else None


class LazyMeter:
    """The search's measurement of a plan: `autoquant.quality.load_meter`, as `autoquant evaluate`
    measures (a plan with gptq/awq layers calibrated as `autoquant export` calibrates it). It loads
    the model and the reference only when a measurement is not cached: a rerun whose plans were all
    measured before finishes in seconds."""

    def __init__(self, source: ModelSource, text: TextSource, tokens: int, ui: Progress,
                 shared: MeasuredPlans | None = None, calib: TextSource | None = None) -> None:
        self.source, self.text, self.tokens, self.ui, self.shared = source, text, tokens, ui, shared
        self.calib = calib  # what gptq/awq layers are calibrated on: the search's --calib text
        self._meter: QualityMeter | None = None

    def measure(self, plan: Plan) -> dict[str, Any]:
        if self.shared is not None:
            found = self.shared.get(plan, self.text.fingerprint, self.tokens)
            if found is not None:
                return found
            measured = self._measure(plan)
            self.shared.add(plan, self.text.fingerprint, self.tokens, measured)
            return measured
        return self._measure(plan)

    def _measure(self, plan: Plan) -> dict[str, Any]:
        if self._meter is None:
            task = self.ui.phase("loading model + reference", 1)
            self._meter = load_meter(self.source, self.text, self.tokens)  # as `autoquant evaluate` does
            self.ui.advance(task)
        if plan.calibrated and self._meter.calibration is None:
            from autoquant.models import load_tokenizer
            from autoquant.quantizers.calibrate import calibration_windows

            self._meter.calibration = calibration_windows(load_tokenizer(self.source), self.calib)
        # Keyed by the requested token count: the cache is checked before any tokenizing.
        measured = {**self._meter.measure(plan).to_dict(), "eval_tokens": self.tokens}
        return measured | ({"quantizers": plan.quantizer_digest} if plan.quantizer_digest else {})


def _shared(source: ModelSource, req: SearchRequest) -> MeasuredPlans | None:
    if req.shared_measurements is None:
        return None
    from autoquant.quality import default_device

    return MeasuredPlans(measured_plans_path(fingerprint(source), req.shared_measurements), default_device())


def _annotate(rec: FrontPlan, result: SearchResult, budgets: Budgets) -> None:
    """Search metadata on the recommended plan: what it was chosen under and what it measured."""
    c = rec.costs
    rec.plan.metadata.update({
        "engine": result.request.engine,
        "search": {
            "study": result.study, "storage": result.storage, "trial": rec.trial,
            "space": result.space.name, "sampler": result.request.sampler,
            "budgets": budgets.to_dict(), "batch": result.request.batch, "context": result.request.context,
        },
        "hardware": {"name": result.hardware, "latency_estimated": c.latency_estimated},
        "memory": {"total_bytes": c.memory_bytes, "linear_bytes": c.weight_bytes, "estimated": True,
                   "source": "autoquant.memory model"},
        "latency": {"decode_s": c.decode_s, "prefill_s": c.prefill_s, "estimated": c.latency_estimated},
        "bits_per_weight": c.bits_per_weight,
        "proxy_kl": c.proxy_kl,
        "measured": rec.measured,
        "reference_perplexity": result.reference.perplexity,
    })
