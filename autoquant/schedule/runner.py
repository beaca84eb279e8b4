"""`schedule run`: search every stale target as a Ray task, record the results in the catalog.

    resolve targets, compare fingerprints with the catalog      (driver, seconds)
    per model with stale targets: one profile task              (sensitivity, cached, shared)
    per stale target: one search task, after its model's profile (autoquant.search.run_search)
    as each task returns: its files and entry go into the catalog (atomic), so a crash keeps them
    at the end: one section appended to CHANGES.md

The search writes into a scratch directory on the worker and returns its files, so the catalog
lives on the driver's disk even when the tasks run on a cluster (`--address`). A profile task
returns the model's sensitivity cache files, which each search task installs before searching:
every model is profiled once, wherever its searches run.
"""

from __future__ import annotations

import datetime as _dt
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autoquant.errors import NoPlanFitsError, UserError
from autoquant.catalog import (Catalog, CatalogEntry, Latency, Quality, SearchOutcome, read_catalog,
                                        target_dir, write_catalog)
from autoquant.schedule.changes import Change, append_changes, compare
from autoquant.schedule.fleet import DEFAULT_MODEL, FleetSpec
from autoquant.schedule.status import TargetStatus, target_status
from autoquant.schedule.targets import ResolvedTarget

_KEEP = ("plan.json", "front.json", "front.png", "sensitivity.json")  # of a search's run directory


@dataclass
class ScheduleReport:
    statuses: list[TargetStatus]
    outcomes: list[SearchOutcome]
    changes: list[Change]
    seconds: float

    @property
    def failed(self) -> list[SearchOutcome]:
        return [o for o in self.outcomes if o.error]


# ---- the Ray tasks (run on workers) ---------------------------------------------------------
def _model_arg(model: str) -> str | None:
    return None if model == DEFAULT_MODEL else model


def profile_model(model: str, space: str) -> dict[str, bytes]:
    """Profile a model's sensitivity once (cached on this node) and return its cache files."""
    from autoquant.data import calibration_text
    from autoquant.models import fingerprint, resolve_model
    from autoquant.sensitivity import profile_sensitivity
    from autoquant.sensitivity.cache import default_cache_dir
    from autoquant.space import load_space

    source = resolve_model(_model_arg(model))
    profile_sensitivity(source, load_space(space), calibration_text(None), progress=False)
    prefix = fingerprint(source)
    return {p.name: p.read_bytes() for p in default_cache_dir().glob(f"{prefix}-*.jsonl")}


def _install_cache(files: dict[str, bytes]) -> None:
    """Put the profile's cache files where this node's search looks, unless it has them already."""
    from autoquant.sensitivity.cache import default_cache_dir

    root = default_cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        path = root / name
        if not path.exists() or path.stat().st_size < len(data):
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)


def search_request(rt: ResolvedTarget, fleet: FleetSpec, runs_dir: str, shared_measurements: str | None):
    """The search a target stands for (bench/schedule_reuse.py runs the same one in-process)."""
    from autoquant.search import SearchRequest

    return SearchRequest(
        budgets=rt.budgets, model=_model_arg(rt.target.model), hardware=rt.search_hardware,
        batch=rt.target.workload.batch, context=rt.target.workload.context, space=fleet.space,
        trials=fleet.trials, eval_tokens=fleet.eval_tokens, measure_plans=fleet.measure,
        runs_dir=runs_dir, progress=False, shared_measurements=shared_measurements,
    )


def search_target(rt: ResolvedTarget, fleet: FleetSpec, cache_files: dict[str, bytes], threads: int,
                  measured: dict[str, bytes] | None = None) -> SearchOutcome:
    """One target's search, through the search library's one entry point.

    `measured`: the model's measured plans as the driver last saw them (other targets' searches),
    so a target reuses their measurements on any node; the outcome sends the file back, extended.
    """
    import torch

    from autoquant.search import run_search
    from autoquant.search.measured_plans import measured_plans_path
    from autoquant.sensitivity.cache import default_cache_dir

    torch.set_num_threads(max(1, threads))
    _install_cache(cache_files)
    _install_cache(measured or {})
    shared = measured_plans_path(rt.inputs["model"])
    t0 = time.perf_counter()
    tid = rt.target.id
    with tempfile.TemporaryDirectory(prefix="autoquant-schedule-") as scratch:
        req = search_request(rt, fleet, scratch, str(default_cache_dir()))
        try:
            result = run_search(req)
        except NoPlanFitsError as e:
            return SearchOutcome(tid, False, reason=str(e), files=_files(Path(scratch)),
                                 cache_files=_read(shared), seconds=time.perf_counter() - t0)
        except Exception as e:  # noqa: BLE001  (reported per target; the others still run)
            return SearchOutcome(tid, False, error=f"{type(e).__name__}: {e}", seconds=time.perf_counter() - t0)
        rec = result.recommended
        m, c = rec.measured, rec.costs
        return SearchOutcome(
            tid, True,
            quality=Quality(float(m["perplexity"]), float(m["ppl_change"]), float(m["kl"])),
            memory_bytes=int(c.memory_bytes),
            latency=Latency(c.decode_s * 1e3, c.prefill_s * 1e3, bool(c.latency_estimated), result.hardware),
            formats=rec.plan.assignments(),
            files=_files(Path(scratch)), cache_files=_read(shared), seconds=time.perf_counter() - t0,
        )


def _read(path: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes()} if path.is_file() else {}


def _files(scratch: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in scratch.rglob("*") if p.is_file() and p.name in _KEEP}


# ---- the driver ---------------------------------------------------------------------------------
def _entry(rt: ResolvedTarget, fleet: FleetSpec, o: SearchOutcome, folder: str) -> CatalogEntry:
    t = rt.target
    has = set(o.files)
    return CatalogEntry(
        model=t.model, hardware=t.hardware,
        workload={"batch": t.workload.batch, "context": t.workload.context},
        budgets={"memory": rt.budgets.memory_bytes,
                 "quality": None if rt.budgets.quality is None else str(rt.budgets.quality),
                 "latency": rt.budgets.latency_s},
        space=fleet.space, trials=fleet.trials,
        plan=f"{folder}/plan.json" if o.feasible and "plan.json" in has else None,
        front=f"{folder}/front.json" if "front.json" in has else None,
        quality=o.quality, memory_bytes=o.memory_bytes, latency=o.latency,
        fingerprint=rt.fingerprint, date=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        feasible=o.feasible, inputs=dict(rt.inputs), reason=o.reason,
    )


def _record(catalog: Catalog, rt: ResolvedTarget, fleet: FleetSpec, o: SearchOutcome) -> Change:
    """Write the target's files and entry (catalog.json atomically); what changed since the last entry."""
    folder = target_dir(rt.target.id)
    old = catalog.targets.get(rt.target.id)
    old_formats = _plan_formats(catalog.directory / old.plan) if old is not None and old.plan else None
    out = catalog.directory / folder
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.iterdir():
        if stale.is_file() and stale.name not in o.files:
            stale.unlink()  # e.g. the plan of a target that became infeasible
    for name, data in o.files.items():
        tmp = out / (name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, out / name)
    entry = _entry(rt, fleet, o, folder)
    catalog.targets[rt.target.id] = entry
    write_catalog(catalog)
    return compare(rt.target.id, old, entry, old_formats, o.formats)


def _plan_formats(path: Path) -> dict[str, str] | None:
    from autoquant.plan import Plan

    try:
        return Plan.load(path).assignments()
    except (UserError, OSError):
        return None


def _start_ray(address: str | None, workers: int) -> bool:
    """Join the cluster at `address`, or start a local Ray; True when this call started it."""
    import logging

    import ray

    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = dict(log_to_driver=False, logging_level=logging.ERROR)
    if address:
        try:
            ray.init(address=address, **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise UserError(f"cannot connect to the Ray cluster at {address}: {str(e).splitlines()[0]}") from None
    else:
        # One CPU beyond the search tasks: the profiling actors a profile task starts get one
        # even while `workers` searches hold theirs, so the two can never wait on each other.
        # address="local": a fresh instance, never a stale one another process left on this machine.
        ray.init(address="local", num_cpus=workers + 1, num_gpus=0, include_dashboard=False, **kwargs)
    return True


def run_schedule(
    fleet: FleetSpec, catalog_dir: str | os.PathLike, *, address: str | None = None, workers: int = 1,
    force: bool = False, on_event: Callable[[str], None] | None = None,
) -> ScheduleReport:
    """Search every stale target (all with `force`); record each in the catalog as it finishes."""
    if workers < 1:
        raise UserError(f"--workers must be at least 1 (got {workers})")
    say = on_event or (lambda _msg: None)
    t0 = time.perf_counter()
    catalog = read_catalog(catalog_dir)
    statuses = target_status(fleet, catalog)
    todo = [s.resolved for s in statuses if force or not s.current]
    outcomes: list[SearchOutcome] = []
    changes: list[Change] = []
    stopped = ""
    try:
        if todo:
            _run_tasks(todo, fleet, catalog, address, workers, say, outcomes, changes)
    except BaseException as e:  # Ctrl-C, SIGTERM (Ray's handler exits), a lost cluster: say what finished
        stopped = f"{type(e).__name__}: {e}".splitlines()[0] + f", after {len(outcomes)} of {len(todo)} targets"
        raise
    finally:
        append_changes(catalog.directory, fleet.path, statuses, outcomes, changes, time.perf_counter() - t0,
                       stopped)
    return ScheduleReport(statuses, outcomes, changes, time.perf_counter() - t0)


def _run_tasks(todo: list[ResolvedTarget], fleet: FleetSpec, catalog: Catalog, address: str | None, workers: int,
               say: Callable[[str], None], outcomes: list[SearchOutcome], changes: list[Change]) -> None:
    import ray

    owns = _start_ray(address or os.environ.get("RAY_ADDRESS") or None, workers)
    try:
        threads = max(1, (os.cpu_count() or 1) // workers) if not address else 1
        profile_task = ray.remote(num_cpus=0, max_retries=2)(profile_model)
        search_task = ray.remote(num_cpus=1, max_retries=1)(search_target)
        profiles = {m: profile_task.remote(m, fleet.space) for m in dict.fromkeys(rt.target.model for rt in todo)}
        say(f"profiling {len(profiles)} model(s), then searching {len(todo)} target(s) on Ray")
        fleet_ref = ray.put(fleet)
        measured: dict[str, dict[str, bytes]] = {}  # model -> its measured-plans file, as last sent back
        queue = list(todo)
        pending: dict[Any, ResolvedTarget] = {}
        while queue or pending:
            while queue and len(pending) < workers:  # at most `workers` searches at once
                rt = queue.pop(0)
                m = rt.target.model
                pending[search_task.remote(rt, fleet_ref, profiles[m], threads, measured.get(m))] = rt
            done: list = []
            while not done:  # a timeout, so Ctrl-C reaches Python between waits
                done, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            ref = done[0]
            rt = pending.pop(ref)
            try:
                o = ray.get(ref)
            except Exception as e:  # noqa: BLE001  (a task or its model's profile failed)
                o = SearchOutcome(rt.target.id, False, error=f"{type(e).__name__}: {str(e).splitlines()[0]}")
            outcomes.append(o)
            if o.cache_files:
                measured[rt.target.model] = o.cache_files
            n = f"[{len(outcomes)}/{len(todo)}]"
            if o.error:
                say(f"{n} failed {rt.target.id}: {o.error}")
                continue
            changes.append(_record(catalog, rt, fleet, o))
            what = ("infeasible: " + o.reason.split(";")[0]) if not o.feasible else (
                f"{o.memory_bytes / 1e9:.3f} GB, KL {o.quality.kl:.4f}, decode {o.latency.decode_ms:.2f} ms"
                + (" (estimated)" if o.latency.estimated else " (measured)"))
            say(f"{n} {rt.target.id} in {o.seconds:.0f} s: {what}")
    finally:
        if owns:
            ray.shutdown()
