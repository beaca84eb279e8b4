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
    parts, seconds = worker.proxies(stats.subset([name]), name, [("int8-pc-sym", "rtn"), ("int4-g64-asym", "rtn"),
                                                                 ("int4-g64-asym", "gptq")])
    assert 0 < parts[("int8-pc-sym", "rtn")].fisher_error < parts[("int4-g64-asym", "rtn")].fisher_error
    # gptq minimises the output error on these statistics: below rtn's in the same format
    assert parts[("int4-g64-asym", "gptq")].output_error < parts[("int4-g64-asym", "rtn")].output_error
    assert set(seconds) == {"rtn", "gptq"}

    before = {n: p.detach().clone() for n, p in worker.model.named_parameters()}
    m8 = worker.measure(name, "int8-pc-sym")
    m4 = worker.measure(name, "int4-g64-asym")
    assert 0 <= m8.kl < m4.kl
    assert m4.tokens == 2 * 127 and m4.reference_perplexity > 1
    assert all(torch.equal(before[n], p) for n, p in worker.model.named_parameters())  # restored


def test_a_calibrated_entry_is_measured_on_tokens_its_quantizer_did_not_fit(tiny_source):
    """gptq is fitted to the calibration sums less the measurement windows' share (which are a
    prefix of the calibration windows): its KL is then measured on held-out tokens."""
    from autoquant.formats import QuantFormat
    from autoquant.layers import linear_weight
    from autoquant.quantizers.single import quantized_alone
    from autoquant.sensitivity.statistics import collect_statistics

    windows = token_windows(load_tokenizer(tiny_source), calibration_text(), 128, 1024).clone()
    worker = ProfileWorker(WorkerSpec(tiny_source, windows, windows[:2]))
    name = "model.layers.0.mlp.down_proj"
    stats = worker.statistics(0, len(windows), [name])
    got = worker.measure(name, "int4-g64-asym", "gptq", stats)

    layer = [l for l in worker.layers if l.name == name]
    rest = collect_statistics(worker.model, layer, windows[2:], with_grads=False)  # the tokens not measured on
    fmt = QuantFormat.parse("int4-g64-asym")
    w = linear_weight(worker.model.get_submodule(name))
    held_out = worker._meter.measure_layer(name, fmt, quantized_alone(w, fmt, "gptq", rest.input_sums[name]))
    in_sample = worker._meter.measure_layer(name, fmt, quantized_alone(w, fmt, "gptq", stats.input_sums[name]))
    assert abs(got.kl - held_out.kl) <= 1e-3 * held_out.kl + 1e-9
    assert abs(got.kl - in_sample.kl) > 1e-3 * in_sample.kl  # it is not the fit on every token
    rtn = worker.measure(name, "int4-g64-asym")
    assert got.kl < rtn.kl
