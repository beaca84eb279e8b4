"""Triton kernels for weight-only quantized matmul, and the module that uses them.

    from autoquant.kernels import QuantLinear, wo_matmul
    layer = QuantLinear.from_linear(linear, QuantFormat.parse("int4-g128-asym"))
    y = layer(x)                         # the autoquant::wo_matmul op: CUDA kernels, CPU reference
    y = wo_matmul(x, quantize(w, fmt))   # the functional entry point

One module per kernel path (`decode_stream`, `decode_bytes`, `small_m_dot`, `prefill_tiled`,
`prefill_dequant`, `wgmma_int4`, `reference`), each with its config dataclass and
`can_run(problem, config) -> (ok, reason)`; `selector` picks the path; `launch_state` holds what
launches remember; `ptx` the packed-PTX dequantize they share. docs/kernels.md has the design.
"""

from autoquant.kernels.decode_bytes import ByteGemvConfig
from autoquant.kernels.decode_stream import StreamConfig
from autoquant.kernels.launch_state import DEFAULT as DEFAULT_STATE
from autoquant.kernels.launch_state import LaunchState, decode_pdl
from autoquant.kernels.prefill_tiled import TiledConfig
from autoquant.kernels.problem import SMALL_M_MAX, MatmulProblem
from autoquant.kernels.quant_linear import QuantLinear
from autoquant.kernels.reference import reference_matmul
from autoquant.kernels.small_m_dot import DotConfig
from autoquant.kernels.wo_matmul import wo_matmul, wo_matmul_packed

__all__ = [
    "DEFAULT_STATE", "SMALL_M_MAX", "ByteGemvConfig", "DotConfig", "LaunchState", "MatmulProblem", "QuantLinear",
    "StreamConfig", "TiledConfig", "decode_pdl", "reference_matmul", "wo_matmul", "wo_matmul_packed",
]
