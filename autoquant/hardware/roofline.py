"""Roofline latency: a layer takes the longer of moving its bytes and doing its FLOPs.

    bytes = weight in its format (QuantFormat.storage_bytes) + tokens x (in + out) x 2
    flops = 2 x tokens x in x out
    time  = max(bytes / (bandwidth x BW_EFFICIENCY[bits]), flops / (fp16_flops x FLOPS_EFFICIENCY[bits]))
            + LAUNCH_S

The efficiencies derate datasheet peaks to what cuBLAS (16-bit) and this project's kernels
(8- and 4-bit) reached on an H100: least-median fit to an earlier run of
autoquant/hardware/profiles/h100-llama-3-8b.json with LAUNCH_S fixed. Against the committed profile
(`bench/roofline_check.py`: 5 shapes x 8 token counts x every format of that width) the median
|error| is 6% for 16-bit, 19% for int8, 22% for int4; at most 21%, 87% and 92%, at 64 and 256
tokens, where the quantized kernels dequantize in the GEMM loop and run at 0.5-0.65x of cuBLAS,
bound by neither roof.
The rest-of-model default is the earlier profile's fit too (HF transformers forwards in CUDA graphs).
Every number from this model is an estimate: `measured` is False.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from autoquant.formats import QuantFormat
from autoquant.hardware.base import LatencyModel, LayerTime, RestCalibration, check_runtime
from autoquant.hardware.specs import GPUSpec

ACT_BYTES = 2  # fp16/bf16 activations
BW_EFFICIENCY = {16: 0.90, 8: 0.87, 4: 0.72}  # by weight bits, vs datasheet DRAM bandwidth
FLOPS_EFFICIENCY = {16: 0.67, 8: 0.63, 4: 0.58}  # by weight bits, vs datasheet 16-bit tensor peak
LAUNCH_S = 5e-6  # a kernel's fixed cost in a CUDA graph: launch, ramp-up, tail
# Per runtime. graphs: the H100 profile's fit (HF transformers forwards in CUDA graphs); eager adds
# the H200 profile's decode floor (Python launches, ~0.31 ms a block for Llama-3-8B).
_GRAPHS_REST = RestCalibration(block_s=89e-6, kv_efficiency=0.06, token_passes=16.0, attn_efficiency=0.18, measured=False)
DEFAULT_RESTS = {"graphs": _GRAPHS_REST, "eager": dataclasses.replace(_GRAPHS_REST, decode_floor_s=310e-6)}


def _calibrated(table: dict[int, float], bits: int) -> float:
    """The efficiency of the widest calibrated width at or below `bits` (the narrowest below
    it all): llama.cpp's 5- and 6-bit block formats were never timed, so they borrow the
    4- or 8-bit figure, and stay estimates like every roofline number."""
    fitting = [b for b in table if b <= bits]
    return table[max(fitting) if fitting else min(table)]


def layer_bytes(out_features: int, in_features: int, fmt: QuantFormat, tokens: int) -> int:
    return fmt.storage_bytes(out_features, in_features) + tokens * (in_features + out_features) * ACT_BYTES


def layer_flops(out_features: int, in_features: int, tokens: int) -> int:
    return 2 * tokens * out_features * in_features


def roofline_seconds(
    out_features: int, in_features: int, fmt: QuantFormat, tokens: int,
    bandwidth: float, fp16_flops: float,
    bw_efficiency: float | None = None, flops_efficiency: float | None = None, launch_s: float = LAUNCH_S,
) -> float:
    """Efficiencies default to the calibrated ones for the format's bit width."""
    bw_efficiency = _calibrated(BW_EFFICIENCY, fmt.bits) if bw_efficiency is None else bw_efficiency
    flops_efficiency = _calibrated(FLOPS_EFFICIENCY, fmt.bits) if flops_efficiency is None else flops_efficiency
    t_mem = layer_bytes(out_features, in_features, fmt, tokens) / (bandwidth * bw_efficiency)
    t_math = layer_flops(out_features, in_features, tokens) / (fp16_flops * flops_efficiency)
    return max(t_mem, t_math) + launch_s


@dataclass
class RooflineModel(LatencyModel):
    """Latency from a GPU's spec alone: no kernel was timed."""

    spec: GPUSpec
    runtime: str = "graphs"
    rest: RestCalibration = field(init=False)
    measured: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.rest = DEFAULT_RESTS[check_runtime(self.runtime)]

    @property
    def name(self) -> str:
        return f"{self.spec.name} roofline (estimated), {self.runtime}"

    @property
    def bandwidth(self) -> float:
        return self.spec.bandwidth

    @property
    def fp16_flops(self) -> float:
        return self.spec.fp16_flops

    def layer_time(self, out_features: int, in_features: int, fmt: QuantFormat, tokens: int) -> LayerTime:
        return LayerTime(roofline_seconds(out_features, in_features, fmt, tokens, self.bandwidth, self.fp16_flops), False)
