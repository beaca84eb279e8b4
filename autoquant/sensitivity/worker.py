"""One profiling worker: loads the model once, then serves statistics, proxy and KL tasks.

A plain class, so it runs in-process in tests; `executor.py` wraps it as a Ray actor. All
its state is rebuilt from `WorkerSpec` and the task arguments, so a restarted worker
(after a crash or a kill) picks up retried tasks without help.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from autoquant.layers import discover_layers, linear_weight
from autoquant.models import ModelSource, load_model
from autoquant.quantizers import parse_choice
from autoquant.sensitivity.measured import KLMeter, Measurement
from autoquant.sensitivity.proxy import ProxyParts, proxy_parts
from autoquant.sensitivity.statistics import LayerStatistics, collect_statistics


@dataclass(frozen=True)
class WorkerSpec:
    source: ModelSource
    calib_windows: torch.Tensor  # [n, seq] token ids for the statistics pass
    measure_windows: torch.Tensor  # [m, seq] token ids for measured KL (a prefix of the above)
    threads: int = 1
    device: str = "cpu"
    seed: int = 0


class ProfileWorker:
    def __init__(self, spec: WorkerSpec):
        torch.set_num_threads(max(1, spec.threads))
        self.spec = spec
        self.model = load_model(spec.source, device=spec.device)
        self.layers = discover_layers(self.model)
        self._meter: KLMeter | None = None
        self._moments: LayerStatistics | None = None

    def pid(self) -> int:
        return os.getpid()

    def statistics(self, start: int, stop: int, layers: list[str]) -> LayerStatistics:
        """Input moments and output-gradient energies of `layers` over windows [start, stop)."""
        wanted = set(layers)
        chosen = [l for l in self.layers if l.name in wanted]
        windows = self.spec.calib_windows[start:stop]
        return collect_statistics(self.model, chosen, windows, seed=self.spec.seed + start)

    def proxies(self, stats: LayerStatistics, layer: str, formats: list[str]) -> dict[str, ProxyParts]:
        """`formats` are choice keys (`int4-g128-asym`, `int4-g128-asym@gptq`, see quantizers)."""
        w = linear_weight(self.model.get_submodule(layer))
        parts = proxy_parts(w, stats.moment(layer), stats.grad_sq(layer), [parse_choice(f) for f in formats])
        return {f: parts[parse_choice(f)] for f in formats}

    def measure(self, layer: str, fmt: str) -> Measurement:
        if self._meter is None:  # the reference distribution: once per worker, on first use
            self._meter = KLMeter(self.model, self.spec.measure_windows)
        f, quantizer = parse_choice(fmt)
        moment = None
        if quantizer != "rtn":
            if self._moments is None:  # gptq/awq: the input moments, one forward pass per worker
                self._moments = collect_statistics(self.model, self.layers, self.spec.calib_windows, with_grads=False)
            moment = self._moments.moment(layer)
        return self._meter.measure(layer, f, quantizer, moment)
