"""Roofline latency: a layer takes the longer of moving its bytes and doing its FLOPs.

    bytes = weight in its format (QuantFormat.storage_bytes) + tokens x (in + out) x 2
    flops = 2 x tokens x in x out
    time  = max(bytes / (bandwidth x BW_EFFICIENCY), flops / (fp16_flops x FLOPS_EFFICIENCY)) + LAUNCH_S

The efficiencies derate datasheet peaks to what the kernels reach; they were read off the
H100 profile in bench/results (see bench/README.md). Every number from this model is an
estimate: `measured` is False.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from autoquant.formats import QuantFormat
from autoquant.hardware.base import LatencyModel, LayerTime, RestCalibration
from autoquant.hardware.specs import GPUSpec

ACT_BYTES = 2  # fp16/bf16 activations
BW_EFFICIENCY = 0.80  # weight-streaming kernels vs datasheet DRAM bandwidth
FLOPS_EFFICIENCY = 0.60  # large-M matmuls vs datasheet tensor peak
LAUNCH_S = 3e-6  # a kernel's fixed cost: launch, ramp-up, tail
DEFAULT_REST = RestCalibration(
    block_s=60e-6, kv_efficiency=0.5, token_passes=6.0, attn_efficiency=0.3, measured=False
)


def layer_bytes(out_features: int, in_features: int, fmt: QuantFormat, tokens: int) -> int:
    return fmt.storage_bytes(out_features, in_features) + tokens * (in_features + out_features) * ACT_BYTES


def layer_flops(out_features: int, in_features: int, tokens: int) -> int:
    return 2 * tokens * out_features * in_features


def roofline_seconds(
    out_features: int, in_features: int, fmt: QuantFormat, tokens: int,
    bandwidth: float, fp16_flops: float,
    bw_efficiency: float = BW_EFFICIENCY, flops_efficiency: float = FLOPS_EFFICIENCY, launch_s: float = LAUNCH_S,
) -> float:
    t_mem = layer_bytes(out_features, in_features, fmt, tokens) / (bandwidth * bw_efficiency)
    t_math = layer_flops(out_features, in_features, tokens) / (fp16_flops * flops_efficiency)
    return max(t_mem, t_math) + launch_s


@dataclass
class RooflineModel(LatencyModel):
    """Latency from a GPU's spec alone: no kernel was timed."""

    spec: GPUSpec
    rest: RestCalibration = field(default=DEFAULT_REST)
    bw_efficiency: float = BW_EFFICIENCY
    flops_efficiency: float = FLOPS_EFFICIENCY
    measured: bool = field(default=False, init=False)

    @property
    def name(self) -> str:
        return f"{self.spec.name} roofline (estimated)"

    @property
    def bandwidth(self) -> float:
        return self.spec.bandwidth

    @property
    def fp16_flops(self) -> float:
        return self.spec.fp16_flops

    def layer_time(self, out_features: int, in_features: int, fmt: QuantFormat, tokens: int) -> LayerTime:
        t = roofline_seconds(
            out_features, in_features, fmt, tokens, self.bandwidth, self.fp16_flops,
            self.bw_efficiency, self.flops_efficiency,
        )
        return LayerTime(t, measured=False)
