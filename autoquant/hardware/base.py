"""The interface every latency model implements: seconds of one linear layer, and of the rest."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass

from autoquant.formats import QuantFormat


@dataclass(frozen=True)
class LayerTime:
    seconds: float
    measured: bool  # timed on this GPU (interpolated between measured batch buckets counts)


@dataclass(frozen=True)
class RestCalibration:
    """The part of a forward that is not a linear layer: attention over the KV cache,
    norms, rotary, activations, residual adds, embedding, and the gaps between small kernels.

        decode  = blocks * (block_s + decode_floor_s) + kv_cache_bytes / (bandwidth * kv_efficiency)
        prefill = blocks * (block_s + tokens * token_passes * (hidden + intermediate) * 2 / bandwidth)
                  + attention_flops / (fp16_flops * attn_efficiency)
    """

    block_s: float  # fixed seconds per transformer block per forward (many small kernels)
    kv_efficiency: float  # fraction of DRAM bandwidth decode attention reaches on the KV cache
    token_passes: float  # elementwise traffic per token per block, in (hidden + intermediate) x 2 bytes
    attn_efficiency: float  # fraction of peak 16-bit FLOPs prefill attention reaches
    measured: bool  # fitted to timed forwards on this GPU, or a default
    # eager only: seconds per block a decode step adds when launched op by op (CPU-bound launches);
    # prefill is GPU-bound, so eager prefill shares the graphs fit
    decode_floor_s: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> RestCalibration:
        return cls(
            float(d["block_s"]), float(d["kv_efficiency"]), float(d["token_passes"]),
            float(d["attn_efficiency"]), bool(d.get("measured", False)), float(d.get("decode_floor_s", 0.0)),
        )


RUNTIMES = ("graphs", "eager")  # a decode step replayed as one CUDA graph (serving engines), or launched op by op


def check_runtime(runtime: str) -> str:
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
    return runtime


class LatencyModel(ABC):
    """Seconds of a linear layer [out, in] in `fmt` applied to `tokens` tokens, and of the rest.

    `measured` is False for a roofline model: its every number is an estimate.
    """

    name: str
    measured: bool
    bandwidth: float  # DRAM bytes/s (measured when the model is a profile)
    fp16_flops: float  # 16-bit tensor FLOP/s
    rest: RestCalibration  # for `runtime`
    runtime: str  # "graphs" | "eager": how the forward the rest describes is launched

    @abstractmethod
    def layer_time(self, out_features: int, in_features: int, fmt: QuantFormat, tokens: int) -> LayerTime: ...

    def layer_seconds(self, out_features: int, in_features: int, fmt: QuantFormat, tokens: int) -> float:
        return self.layer_time(out_features, in_features, fmt, tokens).seconds
