"""One search, from CLI flags to a recommended plan on disk.

    1. model shape, space, latency model, texts      (bad input fails here, in seconds)
    2. budgets that no plan of the space can meet     -> NoPlanFitsError before any profiling
    3. sensitivity table                              profile_sensitivity (cached, resumable)
    4. problem + exact DP front of the proxy          objectives.py, dp.py
    5. Optuna study: open / resume, seed, N trials    study.py
    6. front of the feasible trials; measure up to K  measure.py (plus uniform baselines)
       of them for real, spread over memory
    7. recommend: best measured quality within every budget; write front.json, plan.json,
       front.png under runs/<model>/<study>/                                   report.py
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from autoquant.budgets import format_bytes, format_seconds
from autoquant.data import TextSource, calibration_text, evaluation_text
from autoquant.errors import NoPlanFitsError, UserError
from autoquant.formats import QuantFormat
from autoquant.hardware import latency_model_for, plan_latency
from autoquant.memory import ModelShape, estimate_memory
from autoquant.models import ModelSource, fingerprint, resolve_model
from autoquant.plan import Plan
from autoquant.progress import Progress
from autoquant.search.dp import ProxyFront, exact_front
from autoquant.search.front import FrontPlan, ParetoFront, hypervolume_ratio, pareto_mask
from autoquant.search.measure import DEFAULT_EVAL_TOKENS, Measurement, PlanMeasurer
from autoquant.search.objectives import Budgets, PlanCosts, SearchProblem
from autoquant.search.study import (DEFAULT_SAMPLER, SAMPLERS, SearchStudy, default_storage, encode_choice,
                                    open_persistent, proxy_points)
from autoquant.space import SearchSpace, load_space

DEFAULT_TRIALS = 1000
DEFAULT_MEASURE = 6
BASELINES = ("fp16", "int8-pc-sym", "int4-g128-asym")


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
    runs_dir: str = "runs"
    sampler: str = DEFAULT_SAMPLER
    seed: int | None = 0
    progress: bool = True


@dataclass
class SearchResult:
    """What a search found, measured and recommends; `report.py` renders it."""

    request: SearchRequest
    model: str
    space: SearchSpace
    hardware: str
    latency_estimated: bool
    study: str
    storage: str
    trials_total: int
    trials_added: int
    seeded: int
    front: ParetoFront
    recommended: FrontPlan | None
    reference: Measurement
    run_dir: Path
    proxy_front_size: int
    proxy_hv_ratio: float  # hypervolume of all trials / the exact DP front's, (proxy KL, weight bytes)
    problem: SearchProblem
    choices: list[list[int]]  # every search trial's plan, as choice indices
    table_notes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)


# ---- 1. setup --------------------------------------------------------------------------------
def model_slug(source: ModelSource) -> str:
    """A directory name for the model: GGUF stem, directory name, or org--name."""
    if source.kind == "gguf":
        raw = Path(source.gguf_file or source.path).stem
    elif source.kind == "dir":
        raw = Path(source.path).name
    else:
        raw = source.spec.replace("/", "--")
    return re.sub(r"[^A-Za-z0-9._-]+", "-", raw).strip("-") or "model"


def default_study_name(space: SearchSpace, batch: int, context: int) -> str:
    return f"{space.name}-b{batch}-c{context}"


def validate_request(req: SearchRequest) -> None:
    if req.batch < 1 or req.context < 1:
        raise UserError(f"--batch and --context must be at least 1 (got {req.batch}, {req.context})")
    if req.trials < 0:
        raise UserError(f"--trials must be 0 or more (got {req.trials})")
    if req.eval_tokens < 64:
        raise UserError(f"--eval-tokens must be at least 64 (got {req.eval_tokens})")
    if req.measure_plans < 1:
        raise UserError(f"--measure must be at least 1 (got {req.measure_plans})")
    if req.sampler not in SAMPLERS:
        raise UserError(f"unknown sampler {req.sampler!r}; accepted: {', '.join(SAMPLERS)}")


class _ZeroKL:
    """Before profiling: memory and latency do not depend on the sensitivity table."""

    def estimated_kl(self, layer: str, fmt: QuantFormat | str) -> float:
        return 0.0

    def quantizer_for(self, layer: str, fmt: QuantFormat | str) -> str:
        return "rtn"


# ---- 2. budgets nothing can meet -------------------------------------------------------------
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
            f"{format_bytes(mem.activation_bytes + mem.overhead_bytes)}); raise --budget, or lower --batch / --context"
        )
    if budgets.latency_s is not None:
        fastest = problem.costs(problem.fastest_choice())
        if fastest.decode_s > budgets.latency_s:
            label = "estimated" if fastest.latency_estimated else "measured"
            raise NoPlanFitsError(
                f"no plan meets the latency budget {format_seconds(budgets.latency_s)}: the fastest plan of "
                f"space {problem.space.name!r} takes {format_seconds(fastest.decode_s)} a decode step on "
                f"{hardware} ({label}); raise --latency-budget or lower --batch / --context"
            )


# ---- 6. the front ---------------------------------------------------------------------------
def feasible_front(problem: SearchProblem, budgets: Budgets, choices: list[list[int]]) -> list[int]:
    """Indices of the non-dominated plans among those meeting the memory and latency budgets
    (the quality budget is judged on measured values later). Duplicates collapse."""
    rows, idx = [], []
    for i, c in enumerate(choices):
        costs = problem.costs(c)
        if costs.memory_bytes > budgets.memory_bytes:
            continue
        if budgets.latency_s is not None and costs.decode_s > budgets.latency_s:
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
        if p.measured is not None and p.costs.memory_bytes <= budgets.memory_bytes
        and (budgets.latency_s is None or p.costs.decode_s <= budgets.latency_s)
        and meets_quality(Measurement.from_dict(p.measured), budgets)
    ]
    if not ok:
        return None
    return min(ok, key=lambda p: (p.measured["kl"], p.costs.memory_bytes))


# ---- the whole search -----------------------------------------------------------------------
def run_search(req: SearchRequest) -> SearchResult:
    from autoquant.search import report  # late: matplotlib is only needed at the end

    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    validate_request(req)
    source = resolve_model(req.model)
    space = load_space(req.space)
    latency_model = latency_model_for(req.hardware)
    calib = calibration_text(req.calib)
    eval_text = evaluation_text(req.eval, calib)
    shape = ModelShape.from_source(source)
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
    study_name = req.study or default_study_name(space, req.batch, req.context)
    run_dir = Path(req.runs_dir) / model_slug(source) / study_name
    storage = req.storage or default_storage(run_dir)
    model_fp = fingerprint(source)
    open_persistent(study_name, storage, bare, model_fp)

    # ---- 3. sensitivity --------------------------------------------------------------------------
    from autoquant.sensitivity import profile_sensitivity, save_profile

    t = time.perf_counter()
    table = profile_sensitivity(source, space, calib, progress=req.progress)
    # Beside the run, as `autoquant profile` writes it: the app shows it next to the front.
    save_profile(table, run_dir)
    timings["profile"] = time.perf_counter() - t

    # ---- 4. problem and exact proxy front ----------------------------------------------------------
    problem = SearchProblem.build(shape, space, table, latency_model, batch=req.batch, context=req.context,
                                  model_name=source.display)
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
        raise NoPlanFitsError(_nothing_feasible(problem, budgets, latency_model.name))
    to_measure = pick_to_measure(problem, budgets, [choices[i] for i in front_idx], req.measure_plans)
    measure_set = {front_idx[i] for i in to_measure}

    t = time.perf_counter()
    plans, baselines = _measure(study, problem, records, front_idx, measure_set, source, eval_text, req)
    timings["measure"] = time.perf_counter() - t
    front = ParetoFront(sorted(plans, key=lambda p: p.costs.memory_bytes), baselines)

    # ---- 7. recommend and write -------------------------------------------------------------------------
    recommended = recommend(front, budgets)
    result = SearchResult(
        request=req, model=source.display, space=space, hardware=latency_model.name,
        latency_estimated=any(p.costs.latency_estimated for p in plans), study=study_name, storage=storage,
        trials_total=len(records), trials_added=len(records) - before, seeded=seeded, front=front,
        # uniform fp16 measures as the reference itself (PlanMeasurer leaves 16-bit layers as loaded)
        recommended=recommended, reference=Measurement.from_dict(baselines[0].measured), run_dir=run_dir,
        proxy_front_size=len(proxy_front),
        proxy_hv_ratio=feasible_hv_ratio(problem, budgets, proxy_front, choices),
        problem=problem, choices=choices, table_notes=list(table.notes), timings=timings,
    )
    result.notes.extend(_notes(result, problem, budgets))
    if recommended is not None:
        _annotate(recommended, result, budgets)
    timings["total"] = time.perf_counter() - t0
    result.files = report.write_run(result)
    if recommended is None:
        raise NoPlanFitsError(_no_measured_fit(front, budgets, problem, proxy_front, result.files.get("front_json", "")))
    return result


def _measure(
    study: SearchStudy, problem: SearchProblem, records: list, front_idx: list[int], measure_set: set[int],
    source: ModelSource, eval_text: TextSource, req: SearchRequest,
) -> tuple[list[FrontPlan], list[FrontPlan]]:
    """The front as FrontPlans (measured where chosen) and the measured uniform baselines.

    Every measurement is stored on the study as soon as it is made and reused by any later
    run with the same evaluation text and token count.
    """
    cached = study.measurements()
    key = (eval_text.fingerprint, req.eval_tokens)
    todo = sum(study.baseline(b, *key) is None for b in BASELINES)
    todo += sum((encode_choice(records[i].choice), *key) not in cached for i in measure_set)
    baselines, plans = [], []
    with Progress(req.progress and todo > 0) as ui:
        measurer = _LazyMeasurer(source, eval_text, req.eval_tokens, ui, calibration_text(req.calib))
        bar = ui.phase("measuring plans (eval text)", todo)
        for label in BASELINES:
            plan = Plan.uniform(QuantFormat.parse(label), problem.layers, source.display)
            m = study.baseline(label, *key)
            if m is None:
                m = measurer.measure(plan)
                study.store_baseline(label, m)
                ui.advance(bar)
            baselines.append(FrontPlan(plan, _plan_costs(problem, plan), None, f"uniform {label}", m))
        for i in front_idx:
            choice = records[i].choice
            fp = FrontPlan(problem.plan(choice), problem.costs(choice), records[i].number)
            if i in measure_set:
                m = cached.get((encode_choice(choice), *key))
                if m is None:
                    m = measurer.measure(fp.plan)
                    study.record_measurement(choice, fp.costs, m, records[i].number)
                    ui.advance(bar)
                fp.measured = m
            plans.append(fp)
    return plans, baselines


class _LazyMeasurer:
    """Loads the model and the reference only when a measurement is not cached: a rerun whose
    plans were all measured before finishes in seconds."""

    def __init__(self, source: ModelSource, text: TextSource, tokens: int, ui: Progress,
                 calib: TextSource | None = None) -> None:
        self.source, self.text, self.tokens, self.ui, self.calib = source, text, tokens, ui, calib
        self._measurer: PlanMeasurer | None = None

    def measure(self, plan: Plan) -> dict[str, Any]:
        if self._measurer is None:
            task = self.ui.phase("loading model + reference", 1)
            self._measurer = PlanMeasurer(self.source, self.text, self.tokens, calib=self.calib)
            self.ui.advance(task)
        # Keyed by the requested token count: the cache is checked before any tokenizing.
        return {**self._measurer.measure(plan).to_dict(), "eval_tokens": self.tokens}


def _plan_costs(problem: SearchProblem, plan: Plan) -> PlanCosts:
    """Costs of a plan that may lie outside the space (the uniform baselines); no proxy KL."""
    mem = estimate_memory(problem.shape, plan, problem.batch, problem.context)
    lat = None
    if problem.latency is not None:
        lat = plan_latency(problem.shape, plan, problem.latency, problem.batch, problem.context)
    return PlanCosts(
        proxy_kl=math.nan,
        memory_bytes=mem.total_bytes,
        weight_bytes=mem.linear_bytes,
        bits_per_weight=plan.bits_per_weight(problem.layers),
        decode_s=math.nan if lat is None else lat.decode_s,
        prefill_s=math.nan if lat is None else lat.prefill_s,
        latency_estimated=True if lat is None else lat.estimated,
    )


def _annotate(rec: FrontPlan, result: SearchResult, budgets: Budgets) -> None:
    """Search metadata on the recommended plan: what it was chosen under and what it measured."""
    c = rec.costs
    rec.plan.metadata.update({
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


def _notes(result: SearchResult, problem: SearchProblem, budgets: Budgets) -> list[str]:
    notes = []
    rec = result.recommended
    if rec is not None and all(f.is_float for f in rec.plan.formats.values()):
        notes.append(
            f"fp16 fits in {format_bytes(budgets.memory_bytes)}: quantization is not needed for this budget; "
            "the front shows what smaller budgets would cost"
        )
    g32 = QuantFormat.parse("int4-g32-asym")
    if rec is not None and g32 in rec.plan.formats.values() and any("Q4_1" in n for n in result.table_notes):
        notes.append(
            "the recommended plan uses int4-g32-asym, which reproduces this checkpoint's Q4_1 storage almost "
            "exactly: its measured quality overstates what int4-g32-asym gives a model trained in 16 bits"
        )
    if result.latency_estimated:
        notes.append(f"latency is estimated ({result.hardware}), not measured on this machine")
    if any(l.tied and l.role == "lm_head" for l in problem.layers):
        notes.append(
            "bits/weight counts the tied lm_head at 16 bits: it shares the embedding's storage, so memory "
            "does not grow with it; uniform baselines quantize (and so untie) it, adding a copy"
        )
    return notes


def _nothing_feasible(problem: SearchProblem, budgets: Budgets, hardware: str) -> str:
    smallest = problem.costs(problem.smallest_choice())
    parts = [f"no searched plan meets memory {format_bytes(budgets.memory_bytes)}"]
    if budgets.latency_s is not None:
        fastest = problem.costs(problem.fastest_choice())
        parts.append(f"and decode latency {format_seconds(budgets.latency_s)} together")
        return (
            "; ".join(parts)
            + f"; smallest reachable memory {format_bytes(smallest.memory_bytes)}, fastest reachable decode "
            f"{format_seconds(fastest.decode_s)} on {hardware}: raise a budget or add --trials"
        )
    return "; ".join(parts) + f"; smallest reachable memory {format_bytes(smallest.memory_bytes)}"


def _no_measured_fit(front: ParetoFront, budgets: Budgets, problem: SearchProblem, proxy_front: ProxyFront,
                     path: str) -> str:
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
    return (
        f"no measured plan meets the quality budget {q} within memory {format_bytes(budgets.memory_bytes)}"
        + (f" and latency {format_seconds(budgets.latency_s)}" if budgets.latency_s else "")
        + f": the best measured is {value} at {format_bytes(best.costs.memory_bytes)}{need}; "
        f"raise --budget or loosen --quality-budget (front written to {path})"
    )
