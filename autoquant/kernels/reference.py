"""The CPU reference path: dequantize in float32, then matmul, on any device torch runs on.

It is what `QuantLinear` and the `autoquant::wo_matmul` op run off a GPU, so a quantized model
works everywhere; the Triton kernels' tests check against the same arithmetic in float64.
"""

from __future__ import annotations

import torch

from autoquant.kernels.launch_state import LaunchState
from autoquant.kernels.problem import MatmulProblem, Operands
from autoquant.quant import QuantizedWeight, dequantize

NAME = "reference"
CONFIG = None  # takes no config


def reference_matmul(x: torch.Tensor, qw: QuantizedWeight, bias: torch.Tensor | None = None) -> torch.Tensor:
    """`x @ dequant(W)^T (+ bias)` in float32 on any device, returned in x's dtype."""
    w = dequantize(qw, torch.float32).to(x.device)
    y = x.float() @ w.t()
    if bias is not None:
        y = y + bias.float()
    return y.to(x.dtype)


def can_run(problem: MatmulProblem, config: None = None) -> tuple[bool, str]:
    if problem.device_type == "cuda":
        return False, "x is on a GPU, where the Triton paths run"
    if config is not None:
        return False, "takes no config"
    return True, ""


def launch(problem: MatmulProblem, ops: Operands, config: None, state: LaunchState) -> None:
    qw = QuantizedWeight(ops.format, (problem.n, problem.k), ops.codes, ops.scales, ops.zeros)
    ops.y.copy_(reference_matmul(ops.x, qw, ops.bias))
