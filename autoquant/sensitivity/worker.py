"""One profiling worker: loads the model once, then serves statistics, proxy and KL tasks.

A plain class, so it runs in-process in tests; `executor.py` wraps it as a Ray actor. All
its state is rebuilt from `WorkerSpec` and the task arguments, so a restarted worker
(after a crash or a kill) picks up retried tasks without help.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from autoquant.formats import QuantFormat
from autoquant.layers import discover_layers, linear_weight
from autoquant.models import ModelSource, load_model
from autoquant.quality import Measurement, QualityMeter
from autoquant.quantizers.single import quantized_alone
from autoquant.sensitivity.proxy import ProxyParts, proxy_parts
from autoquant.sensitivity.statistics import LayerStatistics, collect_statistics, input_sum


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
        self._meter: QualityMeter | None = None

    def pid(self) -> int:
        return os.getpid()

    def statistics(self, start: int, stop: int, layers: list[str]) -> LayerStatistics:
        """Input moments and output-gradient energies of `layers` over windows [start, stop)."""
        wanted = set(layers)
        chosen = [l for l in self.layers if l.name in wanted]
        windows = self.spec.calib_windows[start:stop]
        return collect_statistics(self.model, chosen, windows, seed=self.spec.seed + start)

    def proxies(self, stats: LayerStatistics, layer: str,
                variants: list[tuple[str, str]]) -> tuple[dict[tuple[str, str], ProxyParts], dict[str, float]]:
        """The layer's ProxyParts per (format, quantizer), and the seconds each quantizer took."""
        w = linear_weight(self.model.get_submodule(layer))
        seconds: dict[str, float] = {}
        parts = proxy_parts(w, stats.moment(layer), stats.grad_sq(layer),
                            [(QuantFormat.parse(f), q) for f, q in variants], seconds)
        return {(str(f), q): p for (f, q), p in parts.items()}, seconds

    def measure(self, layer: str, fmt: str, quantizer: str = "rtn", stats: LayerStatistics | None = None) -> Measurement:
        """KL with only `layer` quantized. gptq/awq quantize it from the layer's calibration sums in
        `stats` less the measurement windows' share, so the KL is measured on tokens the quantizer
        did not fit (its proxy, on all of them, is optimistic; table.calibrate corrects by this)."""
        if self._meter is None:  # the reference distribution: once per worker, on first use
            self._meter = QualityMeter(self.model, self.spec.measure_windows)
        f = QuantFormat.parse(fmt)
        weight = None
        if quantizer != "rtn":
            if stats is None:
                raise ValueError(f"measuring {quantizer} needs the layer's calibration statistics")
            seen, n = input_sum(self.model, layer, self.spec.measure_windows)  # on the model's device
            h = torch.as_tensor(stats.input_sums[stats.input_of[layer]], device=seen.device).float()
            if 2 * n <= stats.tokens:  # the measurement windows are a prefix of the calibration windows
                h = h - seen
            weight = quantized_alone(linear_weight(self.model.get_submodule(layer)), f, quantizer, h)
        return self._meter.measure_layer(layer, f, weight)
