"""Sizing the workers to the machine or cluster."""

from __future__ import annotations

import pytest

from autoquant.errors import UserError
from autoquant.sensitivity.executor import plan_resources


def test_cpu_defaults_split_cores():
    r = plan_resources(cpus=16, gpus=0, workers=None)
    assert (r.workers, r.threads, r.gpus_per_worker, r.device) == (4, 4, 0.0, "cpu")
    assert plan_resources(cpus=2, gpus=0, workers=None).workers == 1
    r = plan_resources(cpus=2, gpus=0, workers=2)
    assert (r.workers, r.threads) == (2, 1)


def test_gpus_one_worker_each_or_shared():
    r = plan_resources(cpus=16, gpus=2, workers=None)
    assert (r.workers, r.gpus_per_worker, r.device) == (2, 1.0, "cuda")
    r = plan_resources(cpus=16, gpus=1, workers=4)
    assert (r.workers, r.threads, r.gpus_per_worker) == (4, 4, 0.25)


def test_bad_worker_count():
    with pytest.raises(UserError, match="--workers"):
        plan_resources(cpus=2, gpus=0, workers=0)
