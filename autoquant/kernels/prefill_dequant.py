"""Prefill path for M >= DEQUANT_MIN_M (tuned launches): dequantize W, then cuBLAS multiplies.

A Triton kernel writes W in x's dtype to a temporary [N, K] buffer (0.5-1 byte a weight read,
2 written) and `torch.mm` / `addmm` runs the GEMM, which outpaces a tl.dot kernel that
dequantizes each tile; the extra traffic costs a share of a long GEMM that shrinks with M. On
Hopper with fp16 x and int4 codes, `wgmma_int4` fuses the two where it pays off. (Row chunks
through one reused buffer, to keep each in L2 for the GEMM, were measured and lost: smaller
GEMMs.)
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from autoquant.kernels.launch_state import LaunchState
from autoquant.kernels.problem import DEQUANT_MIN_M, MatmulProblem, Operands
from autoquant.kernels.tile_ops import _dequant_tile, _load_codes, _scale_zero

NAME = "dequantize + cuBLAS"
CONFIG = None  # takes no config
DEQUANT_TILE = (64, 4)  # rows a program and warps of the dequantize pass


def can_run(problem: MatmulProblem, config: None = None) -> tuple[bool, str]:
    if not problem.triton_runs:
        return False, "Triton kernels need a CUDA device or TRITON_INTERPRET=1"
    if problem.m < DEQUANT_MIN_M:
        return False, f"M = {problem.m} < {DEQUANT_MIN_M}: the dequantize pass would cost more than it saves"
    if config is not None:
        return False, "takes no config"
    return True, ""


def launch(problem: MatmulProblem, ops: Operands, config: None, state: LaunchState) -> None:
    n, k, group = problem.n, problem.k, problem.group
    x2 = ops.x
    w = torch.empty((n, k), dtype=x2.dtype, device=x2.device)
    bk = 128 if group == k else max(b_ for b_ in (128, 64, 32, 16) if group % b_ == 0)
    bn, warps = DEQUANT_TILE
    _dequant_kernel[(triton.cdiv(k, bk), triton.cdiv(n, bn))](
        ops.codes, ops.scales, ops.z, w, n, k, group, ops.codes.stride(0), ops.scales.stride(0), ops.stride_zn,
        ops.stride_zg, w.stride(0), BITS=problem.bits, BLOCK_N=bn, BLOCK_K=bk, USE_ASM=not problem.interpreting,
        num_warps=warps,
    )
    if ops.bias is not None:
        torch.addmm(ops.bias.to(x2.dtype), x2, w.t(), out=ops.y)
    else:
        torch.mm(x2, w.t(), out=ops.y)
    state.last["prefill"] = "dequant+cublas"


@triton.jit(do_not_specialize=["GROUP", "stride_zn", "stride_zg"])
def _dequant_kernel(
    c_ptr, s_ptr, z_ptr, w_ptr, N, K, GROUP, stride_cn, stride_sn, stride_zn, stride_zg, stride_wn,
    BITS: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, USE_ASM: tl.constexpr,
):
    """W tile [BLOCK_N, BLOCK_K] -> fp16/bf16 in w_ptr (row-major [N, K]); BLOCK_K inside one group.
    Consecutive programs take consecutive K tiles of the same rows, so the writes in flight at once
    fill whole stretches of each row (closer to copy bandwidth than programs down N; docs/kernels.md)."""
    PACK: tl.constexpr = 8 // BITS
    BKB: tl.constexpr = BLOCK_K // PACK
    dtype = w_ptr.dtype.element_ty
    pid_n = tl.program_id(1)
    k0 = tl.program_id(0) * BLOCK_K
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_b = tl.arange(0, BKB)
    n_mask = offs_n < N
    row_bytes = (K + PACK - 1) // PACK
    kb = k0 // PACK + offs_b
    byt = _load_codes(c_ptr + offs_n[:, None] * stride_cn, kb, n_mask, row_bytes, False)
    s, zf = _scale_zero(s_ptr, z_ptr, offs_n, n_mask, k0, K, GROUP, stride_sn, stride_zn, stride_zg)
    w = _dequant_tile(byt, s, zf, BITS, BLOCK_N, BLOCK_K, USE_ASM, dtype)
    offs_k = k0 + tl.arange(0, BLOCK_K)
    tl.store(w_ptr + offs_n[:, None] * stride_wn + offs_k[None, :], w,
             mask=n_mask[:, None] & (offs_k[None, :] < K))

