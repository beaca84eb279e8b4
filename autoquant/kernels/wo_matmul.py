"""Weight-only quantized matmul `y = x @ dequant(W)^T`: validate the inputs, pick a path, launch.

The weight stays in the layout `autoquant.quant` writes (see `autoquant.formats`): codes uint8
[N, K] (int8) or [N, ceil(K/2)] (int4, code 2j in the low nibble of byte j), fp16 scales [N, G]
and, for asymmetric formats, uint8 zero-points [N, G]. Each path is a module of its own (see
`selector` for the order and the rule); autotuned launches cache their pick on disk per
(N, K, group, M bucket, bits, zero-point mode).

Format knobs other than the bit width are mostly runtime arguments, so one compiled variant
serves every group size: a step never straddles a scale group (configs are pruned so the
sub-block divides GROUP). The decode stream compiles the zero-point mode in (a symmetric
format's fixed zero-point costs no loads); the others read it from a one-byte tensor with
stride 0.
"""

from __future__ import annotations

import contextlib

import torch

from autoquant.formats import QuantFormat
from autoquant.kernels.launch_state import DEFAULT, LaunchState
from autoquant.kernels.problem import MatmulProblem, Operands, min_block_k
from autoquant.kernels.selector import choose
from autoquant.quant import QuantizedWeight


def _check(x: torch.Tensor, codes: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor | None,
           fmt: QuantFormat, n: int, k: int) -> None:
    if fmt.is_float:
        raise ValueError(f"{fmt} is not a weight-only integer format")
    if x.dtype not in (torch.float16, torch.bfloat16):
        raise TypeError(f"activations must be fp16 or bf16, got {x.dtype}")
    if x.shape[-1] != k:
        raise ValueError(f"x has {x.shape[-1]} features, the weight expects {k}")
    want = (n, k) if fmt.bits == 8 else (n, (k + 1) // 2)
    if tuple(codes.shape) != want or codes.dtype != torch.uint8:
        raise ValueError(f"codes must be uint8 {want}, got {codes.dtype} {tuple(codes.shape)}")
    g = fmt.groups(k)
    if tuple(scales.shape) != (n, g) or scales.dtype != torch.float16:
        raise ValueError(f"scales must be fp16 {(n, g)}, got {scales.dtype} {tuple(scales.shape)}")
    if fmt.symmetric != (zeros is None):
        raise ValueError(f"{fmt} {'takes no' if fmt.symmetric else 'needs'} zero-points")
    if zeros is not None and (tuple(zeros.shape) != (n, g) or zeros.dtype != torch.uint8):
        raise ValueError(f"zeros must be uint8 {(n, g)}, got {zeros.dtype} {tuple(zeros.shape)}")
    group = fmt.effective_group(k)
    if group != k and group % min_block_k(fmt.bits):
        raise ValueError(f"group size {group} is not supported by the kernels (a multiple of {min_block_k(fmt.bits)})")


def zero_args(zeros: torch.Tensor | None, device: torch.device, bits: int,
              state: LaunchState = DEFAULT) -> tuple[torch.Tensor, int, int]:
    """The kernels' zero-point tensor and its (row, group) strides: the stored [N, G] bytes, or for a
    symmetric format one byte holding the fixed zero-point, read with stride 0."""
    if zeros is None:
        return state.sym_zero_byte(device, bits), 0, 0
    z = zeros.contiguous()
    return z, z.stride(0), 1


def _on_device(x: torch.Tensor) -> contextlib.AbstractContextManager:
    """Launch on x's GPU, whatever the current device (a model spread over several GPUs)."""
    if x.is_cuda and x.device.index != torch.cuda.current_device():
        return torch.cuda.device(x.device)
    return contextlib.nullcontext()


def wo_matmul_packed(
    x: torch.Tensor,
    codes: torch.Tensor,
    scales: torch.Tensor,
    zeros: torch.Tensor | None,
    fmt: QuantFormat,
    out_features: int,
    in_features: int,
    bias: torch.Tensor | None = None,
    *,
    config: object | None = None,
    out: torch.Tensor | None = None,
    state: LaunchState | None = None,
) -> torch.Tensor:
    """`x @ dequant(W)^T (+ bias)` from the stored tensors. x [..., K] fp16/bf16 -> [..., N].

    `config=None` autotunes on a GPU (cached on disk) and uses each path's `default_config` under
    the interpreter; an explicit config (a path's config dataclass) runs that path with it, and
    raises ValueError, saying why, where it cannot. `out`, a contiguous [M, N] tensor of x's dtype,
    receives the result (tests poison it). `state` holds what launches remember (PDL picks,
    scratch tensors, the last config): `launch_state.DEFAULT` unless a test passes its own.
    """
    n, k = out_features, in_features
    _check(x, codes, scales, zeros, fmt, n, k)
    state = DEFAULT if state is None else state
    lead = x.shape[:-1]
    x2 = x.reshape(-1, k)
    if x2.stride(-1) != 1:
        x2 = x2.contiguous()
    m = x2.shape[0]
    if out is None:
        y = torch.empty((m, n), dtype=x.dtype, device=x.device)
    else:
        if tuple(out.shape) != (m, n) or out.dtype != x.dtype or not out.is_contiguous():
            raise ValueError(f"out must be a contiguous {x.dtype} tensor of shape {(m, n)}")
        y = out
    if m == 0:
        return y.reshape(*lead, n)
    codes, scales = codes.contiguous(), scales.contiguous()
    with _on_device(x):
        z, stride_zn, stride_zg = zero_args(zeros, x.device, fmt.bits, state)
        ops = Operands(fmt, x2, codes, scales, z, stride_zn, stride_zg, zeros,
                       bias.contiguous() if bias is not None else None, y)
        problem = MatmulProblem.of(x2, codes, fmt, n, k, tuned=config is None)
        choose(problem, config).launch(problem, ops, config, state)
    return y.reshape(*lead, n)


def wo_matmul(
    x: torch.Tensor,
    qw: QuantizedWeight,
    bias: torch.Tensor | None = None,
    *,
    config: object | None = None,
    out: torch.Tensor | None = None,
    state: LaunchState | None = None,
) -> torch.Tensor:
    """`x @ dequant(qw)^T (+ bias)` with the Triton kernels (CUDA, or CPU under TRITON_INTERPRET=1;
    elsewhere the CPU reference path)."""
    n, k = qw.shape
    return wo_matmul_packed(x, qw.codes, qw.scales, qw.zeros, qw.format, n, k, bias, config=config, out=out,
                            state=state)
