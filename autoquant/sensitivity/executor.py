"""Profiling work spread over Ray actors, one model per actor.

    executor = RayExecutor(spec, workers=None, address=None)   # local Ray sized to the machine,
    with executor:                                            # or the cluster at `address` /
        executor.run(tasks, on_done)                          # RAY_ADDRESS

Each actor is a `ProfileWorker` (worker.py): it loads the model once, in `__init__`, and
then serves many tasks. Tasks go to idle actors (at most two in flight each, so one can
start as the other returns), which balances uneven task costs. Fault tolerance is Ray's:
an actor whose process dies is restarted (`max_restarts`) and the tasks it held are
retried on it (`max_task_retries`), so a killed worker costs only its tasks in flight.
If an actor is gone for good, its tasks are resubmitted to the others.

On a cluster with GPUs each actor asks for one GPU (or an equal share when there are
more workers than GPUs) and runs on CUDA; otherwise the CPUs are divided among up to
four actors (fewer if their model copies would not fit in memory), each using its
share as torch threads.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from autoquant.errors import UserError, WorkerMemoryError
from autoquant.ray_address import check_address
from autoquant.sensitivity.worker import ProfileWorker, WorkerSpec

MAX_RESTARTS = 3  # per actor: enough for a few OOM kills or preemptions, not a crash loop
MAX_TASK_RETRIES = 3
_IN_FLIGHT = 2  # per actor
CONNECT_TIMEOUT_S = 20  # joining a cluster: --address that does not answer fails after this


@dataclass(frozen=True)
class Task:
    key: Any  # what `on_done` is told the result belongs to
    method: str  # a ProfileWorker method
    args: tuple


@dataclass(frozen=True)
class Resources:
    workers: int
    threads: int  # torch threads and Ray CPUs per worker
    gpus_per_worker: float  # 0 on CPU

    @property
    def device(self) -> str:
        return "cuda" if self.gpus_per_worker > 0 else "cpu"


def plan_resources(
    cpus: int, gpus: int, workers: int | None, *, memory_bytes: int | None = None, worker_bytes: int | None = None
) -> Resources:
    """Workers and their share of the machine (or cluster).

    GPUs: one worker per GPU by default. CPUs: up to 4 workers, the cores split evenly,
    and no more than the memory holds (`worker_bytes` each, of `memory_bytes` available).
    Single-threaded workers on a small machine beat one multi-threaded worker there: a
    parallel region waits for its slowest thread, so one descheduled thread stalls it
    (measured on 2 shared cores, bench/README.md).
    """
    if workers is not None and workers < 1:
        raise UserError(f"{{workers}} must be at least 1 (got {workers})", params=("workers",))
    if gpus > 0:
        n = workers or gpus
        return Resources(n, max(1, cpus // n), min(1.0, gpus / n))
    n = workers or min(4, max(1, cpus))
    if workers is None and memory_bytes and worker_bytes:
        n = max(1, min(n, memory_bytes // worker_bytes))
    return Resources(n, max(1, cpus // n), 0.0)


def join_cluster(address: str, init_kwargs: dict[str, Any]) -> None:
    """`ray.init(address=...)` bounded in time: UserError naming the address when no Ray cluster
    answers there within CONNECT_TIMEOUT_S (a port that accepts connections but is not a Ray
    head would otherwise leave `ray.init` retrying for minutes)."""
    import ray

    check_address(address)
    outcome: dict[str, BaseException | None] = {}

    def connect() -> None:
        try:
            ray.init(address=address, **init_kwargs)
            outcome["error"] = None
        except BaseException as e:  # handed to the caller's thread
            outcome["error"] = e

    thread = threading.Thread(target=connect, name="ray-connect", daemon=True)
    thread.start()
    thread.join(CONNECT_TIMEOUT_S)
    if "error" not in outcome:
        raise UserError(
            f"could not join the Ray cluster at {address} within {CONNECT_TIMEOUT_S} s (it must be a Ray head's "
            "GCS port, 6379 by default, of the same Ray version, with its auth token here if it uses one)"
        )
    e = outcome["error"]
    if e is not None:
        raise UserError(f"cannot connect to the Ray cluster at {address}: {(str(e).splitlines() or [type(e).__name__])[0]}") from None


class RayExecutor:
    """Starts (or joins) Ray, creates the actors, runs task lists on them."""

    def __init__(
        self, spec: WorkerSpec, workers: int | None = None, address: str | None = None, worker_bytes: int | None = None
    ):
        self.spec = spec
        self.worker_bytes = worker_bytes  # memory one worker needs: caps the default worker count
        self.requested_workers = workers
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        self.resources: Resources | None = None
        self.actors: list = []
        self._owns_ray = False
        self.memory_failures: list[str] = []  # task attempts that ran out of memory (then retried)

    # ---- lifecycle -----------------------------------------------------------------
    def __enter__(self) -> RayExecutor:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        import ray

        if not ray.is_initialized():
            self._owns_ray = True
            kwargs: dict[str, Any] = dict(log_to_driver=False, logging_level=logging.ERROR, include_dashboard=False)
            if self.address:
                kwargs.pop("include_dashboard")
                join_cluster(self.address, kwargs)
            else:
                import torch

                gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
                # "local": our own instance, never one found on this machine (another user's, or a
                # dead one whose address file a kill left behind, which ray.init would try to join).
                ray.init(address="local", num_cpus=os.cpu_count() or 1, num_gpus=gpus, **kwargs)
        total = ray.cluster_resources()
        self.resources = plan_resources(
            int(total.get("CPU", 1)), int(total.get("GPU", 0)), self.requested_workers,
            memory_bytes=int(total.get("memory", 0)) or None, worker_bytes=self.worker_bytes,
        )
        r = self.resources
        spec = replace(self.spec, threads=r.threads, device=r.device)
        actor_cls = ray.remote(max_restarts=MAX_RESTARTS, max_task_retries=MAX_TASK_RETRIES)(ProfileWorker)
        self.actors = [
            actor_cls.options(num_cpus=r.threads, num_gpus=r.gpus_per_worker).remote(spec) for _ in range(r.workers)
        ]

    def stop(self) -> None:
        import ray

        if self._owns_ray:
            if ray.is_initialized():
                ray.shutdown()  # takes the actors with it, without retrying their pending tasks
        else:
            for actor in self.actors:  # a shared cluster: free our actors only
                try:
                    ray.kill(actor, no_restart=True)
                except Exception:  # already gone
                    pass
        self.actors = []
        self._owns_ray = False

    def worker_pids(self) -> list[int]:
        import ray

        return ray.get([a.pid.remote() for a in self.actors])

    def put(self, value: Any):
        """Ship a large argument once; tasks then take the reference."""
        import ray

        return ray.put(value)

    # ---- running ---------------------------------------------------------------------
    def run(self, tasks: Sequence[Task], on_done: Callable[[Task, Any], None]) -> None:
        """Run every task, calling `on_done(task, result)` in the driver as each one finishes.

        A task that runs out of memory in its worker (MemoryError, or torch failing to
        allocate, under an RLIMIT_AS or a cgroup limit) costs only that attempt: the worker is
        restarted clean and the task goes back in the queue. A task that fails so every time
        is reported once all the others are done (and saved by `on_done`).
        """
        import ray
        from ray.exceptions import RayActorError, RayTaskError

        queue: deque[Task] = deque(tasks)
        attempts: dict[int, int] = {}
        pending: dict[Any, tuple[Task, Any]] = {}  # ObjectRef -> (task, actor)
        load = {id(a): 0 for a in self.actors}
        alive = list(self.actors)
        out_of_memory: list[tuple[Task, str]] = []  # tasks given up on

        def submit() -> None:
            for actor in alive:
                while queue and load[id(actor)] < _IN_FLIGHT:
                    task = queue.popleft()
                    ref = getattr(actor, task.method).remote(*task.args)
                    pending[ref] = (task, actor)
                    load[id(actor)] += 1

        submit()
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            ref = done[0]
            task, actor = pending.pop(ref)
            load[id(actor)] -= 1
            try:
                result = ray.get(ref)
            except RayActorError:
                # Gone beyond its restarts: drop it, give the task to the others.
                if actor in alive:
                    alive.remove(actor)
                attempts[id(task)] = attempts.get(id(task), 0) + 1
                if not alive or attempts[id(task)] > MAX_TASK_RETRIES:
                    raise RuntimeError(f"profiling task {task.method}{task.args[:2]} failed: every worker died") from None
                queue.appendleft(task)
            except RayTaskError as e:
                reason = _out_of_memory(e)
                if reason is None:
                    raise  # a bug in the task: keep its traceback
                self.memory_failures.append(f"{task.method}{_describe(task)}: {reason}")
                ray.kill(actor, no_restart=False)  # a fresh process; Ray retries its other tasks there
                attempts[id(task)] = attempts.get(id(task), 0) + 1
                if attempts[id(task)] > MAX_TASK_RETRIES:
                    out_of_memory.append((task, reason))
                else:
                    queue.append(task)
            else:
                on_done(task, result)
            submit()
        if out_of_memory:
            task, reason = out_of_memory[0]
            raise WorkerMemoryError(
                f"{len(out_of_memory)} profiling task(s) ran out of memory in every attempt (first: "
                f"{task.method}{_describe(task)}: {reason}); every other result is cached: re-run with "
                "fewer --workers or more memory per worker to finish"
            )


def _describe(task: Task) -> str:
    return "(" + ", ".join(repr(a) for a in task.args[:2] if isinstance(a, (str, int))) + ")"


def _out_of_memory(e: Exception) -> str | None:
    """The one-line reason when a task failed for lack of memory, else None."""
    cause = getattr(e, "cause", None)
    if isinstance(cause, MemoryError):
        return "MemoryError"
    text = str(cause if cause is not None else e)
    for needle in ("can't allocate memory", "Cannot allocate memory", "out of memory", "OutOfMemory"):
        if needle in text:
            line = next((l for l in text.splitlines() if needle in l), needle)
            return line.strip()[:160]
    return None
