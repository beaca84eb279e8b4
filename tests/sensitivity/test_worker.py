"""A profiling worker in-process (no Ray): the three kinds of task it serves."""

from __future__ import annotations

import torch

from autoquant.data import calibration_text, token_windows
from autoquant.models import load_tokenizer
from autoquant.sensitivity.worker import ProfileWorker, WorkerSpec
from sensitivity_fixtures import tiny_source  # noqa: F401  (a fixture)


def test_worker_tasks(tiny_source):
    windows = token_windows(load_tokenizer(tiny_source), calibration_text(), 128, 512).clone()
    worker = ProfileWorker(WorkerSpec(tiny_source, windows, windows[:2]))
    names = [l.name for l in worker.layers]
    stats = worker.statistics(0, 2, names).merge(worker.statistics(2, 4, names))
    assert stats.tokens == 512

    name = "model.layers.1.mlp.down_proj"
    parts = worker.proxies(stats.subset([name]), name, ["int8-pc-sym", "int4-g64-asym"])
    assert 0 < parts["int8-pc-sym"].fisher_error < parts["int4-g64-asym"].fisher_error

    before = {n: p.detach().clone() for n, p in worker.model.named_parameters()}
    m8 = worker.measure(name, "int8-pc-sym")
    m4 = worker.measure(name, "int4-g64-asym")
    assert 0 <= m8.kl < m4.kl
    assert m4.tokens == 2 * 127 and m4.reference_perplexity > 1
    assert all(torch.equal(before[n], p) for n, p in worker.model.named_parameters())  # restored
