"""Sizing the workers to the machine or cluster."""

from __future__ import annotations

import pytest

from autoquant.errors import UserError
from autoquant.sensitivity.executor import plan_resources


def test_cpu_defaults_split_cores():
    r = plan_resources(cpus=16, gpus=0, workers=None)
    assert (r.workers, r.threads, r.gpus_per_worker, r.device) == (4, 4, 0.0, "cpu")
    r = plan_resources(cpus=2, gpus=0, workers=None)
    assert (r.workers, r.threads) == (2, 1)
    r = plan_resources(cpus=2, gpus=0, workers=1)
    assert (r.workers, r.threads) == (1, 2)


def test_cpu_workers_fit_in_memory():
    gib = 1 << 30
    assert plan_resources(cpus=16, gpus=0, workers=None, memory_bytes=20 * gib, worker_bytes=8 * gib).workers == 2
    assert plan_resources(cpus=16, gpus=0, workers=None, memory_bytes=4 * gib, worker_bytes=8 * gib).workers == 1
    # an explicit --workers is the user's call
    assert plan_resources(cpus=16, gpus=0, workers=3, memory_bytes=4 * gib, worker_bytes=8 * gib).workers == 3


def test_gpus_one_worker_each_or_shared():
    r = plan_resources(cpus=16, gpus=2, workers=None)
    assert (r.workers, r.gpus_per_worker, r.device) == (2, 1.0, "cuda")
    r = plan_resources(cpus=16, gpus=1, workers=4)
    assert (r.workers, r.threads, r.gpus_per_worker) == (4, 4, 0.25)


def test_bad_worker_count():
    with pytest.raises(UserError, match="workers must be at least 1"):  # the CLI names the flag
        plan_resources(cpus=2, gpus=0, workers=0)
