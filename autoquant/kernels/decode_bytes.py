"""Decode path for one token on any shape: a split-K GEMV over code bytes, on CUDA cores.

The decode stream (`decode_stream`) is the fast path at M = 1; this one takes what it cannot read
as words: K not a multiple of the codes a word, or misaligned x or code rows. Each thread streams
code bytes straight into registers, the next step's codes and scales already in flight, fp32
products a byte, one row reduction at the end.
"""

from __future__ import annotations

from dataclasses import dataclass

import triton
import triton.language as tl

from autoquant.kernels.launch_state import LaunchState
from autoquant.kernels.problem import (
    MAX_SPLIT_K, MatmulProblem, Operands, autotuned, block_k_fits, even_k, prune_split_k_tiles, split_k_workspace,
    use_asm, x_pairs,
)
from autoquant.kernels.tile_ops import _codes_to_fp16, _halves, _load_codes, _scale_zero, _splitk_finish

NAME = "decode bytes"


@dataclass(frozen=True)
class ByteGemvConfig:
    """An explicit launch of the byte GEMV (tests, benchmarks of one config)."""

    block_n: int  # rows of W a program
    block_k: int  # inputs a step (inside one scale group)
    num_warps: int = 4
    num_stages: int = 1
    split_k: int = 1  # programs along K, summed by the last to arrive


CONFIG = ByteGemvConfig  # an explicit config of this type asks for this path


def default_config(problem: MatmulProblem) -> ByteGemvConfig:
    """The config used without autotuning (interpreter): small tiles, valid for the group."""
    bk = 64 if problem.group == problem.k else next(b for b in (64, 32, 16) if block_k_fits(b, problem.group,
                                                                                          problem.bits))
    return ByteGemvConfig(block_n=32, block_k=bk, num_warps=4, num_stages=1)


def can_run(problem: MatmulProblem, config: ByteGemvConfig | None = None) -> tuple[bool, str]:
    if not problem.triton_runs:
        return False, "Triton kernels need a CUDA device or TRITON_INTERPRET=1"
    if problem.m != 1:
        return False, f"M = {problem.m}: a GEMV takes one token"
    if config is not None:
        if problem.group != problem.k and not block_k_fits(config.block_k, problem.group, problem.bits):
            return False, f"block_k {config.block_k} does not fit scale groups of {problem.group}"
        if config.split_k > MAX_SPLIT_K:
            return False, f"split_k at most {MAX_SPLIT_K}"
    return True, ""


@triton.jit(do_not_specialize=["GROUP", "SPLIT_K", "M_BUCKET", "stride_zn", "stride_zg"])
def _gemv_kernel(
    x_ptr, c_ptr, s_ptr, z_ptr, b_ptr, y_ptr, ws_ptr, lock_ptr,
    M, N, K, GROUP, SPLIT_K,
    stride_xm, stride_cn, stride_sn, stride_zn, stride_zg, stride_ym,
    M_BUCKET,
    BITS: tl.constexpr, HAS_BIAS: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, EVEN_K: tl.constexpr, X_PAIRS: tl.constexpr,
    USE_ASM: tl.constexpr,
):
    """M = 1 on CUDA cores, any shape (the word kernel below is the fast path): each thread
    streams code bytes straight into registers, the next step's codes and scales already in
    flight (prefetched one step ahead), fp32 products per byte, one row reduction at the end."""
    PACK: tl.constexpr = 8 // BITS
    BKB: tl.constexpr = BLOCK_K // PACK
    pid_n = tl.program_id(0)
    pid_k = tl.program_id(1)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_b = tl.arange(0, BKB)
    n_mask = offs_n < N
    row_bytes = (K + PACK - 1) // PACK
    steps_per_split = tl.cdiv(tl.cdiv(K, BLOCK_K), SPLIT_K)
    k_begin = pid_k * steps_per_split * BLOCK_K
    k_end = tl.minimum(K, k_begin + steps_per_split * BLOCK_K)

    c_rows = c_ptr + offs_n[:, None] * stride_cn
    x_pairs = x_ptr.to(tl.pointer_type(tl.int32))

    acc = tl.zeros((BLOCK_N, BKB), dtype=tl.float32)
    # (offs_n * 0 + scalar: a vector comparison; the interpreter rejects scalar-broadcast masks)
    byt = _load_codes(c_rows, k_begin // PACK + offs_b, n_mask & (offs_n * 0 + k_begin < k_end), row_bytes, EVEN_K)
    s, zf = _scale_zero(s_ptr, z_ptr, offs_n, n_mask, k_begin, K, GROUP, stride_sn, stride_zn, stride_zg)
    for k0 in range(k_begin, k_end, BLOCK_K):
        nxt = k0 + BLOCK_K
        kb = k0 // PACK + offs_b
        # next step's operands first, so their latency overlaps this step's arithmetic
        rows_next = n_mask & (offs_n * 0 + nxt < k_end)
        byt_next = _load_codes(c_rows, nxt // PACK + offs_b, rows_next, row_bytes, EVEN_K)
        s_next, zf_next = _scale_zero(s_ptr, z_ptr, offs_n, n_mask, nxt, K, GROUP, stride_sn, stride_zn, stride_zg)
        if BITS == 8:
            c_lo, c_hi = _codes_to_fp16(byt, BITS, USE_ASM)
            xk = k0 + offs_b
            if EVEN_K:
                xv = tl.load(x_ptr + xk)
            else:
                xv = tl.load(x_ptr + xk, mask=xk < K, other=0.0)
            w = (c_lo - zf[:, None]) * s[:, None]
            acc += w.to(tl.float32) * xv.to(tl.float32)[None, :]
        else:
            c_lo, c_hi = _codes_to_fp16(byt, BITS, USE_ASM)
            if X_PAIRS:
                if EVEN_K:
                    pairs = tl.load(x_pairs + kb)
                else:
                    pairs = tl.load(x_pairs + kb, mask=kb < K // 2, other=0)
                xe, xo = _halves(pairs, x_ptr.dtype.element_ty)
            else:
                xe = tl.load(x_ptr + 2 * kb, mask=2 * kb < K, other=0.0)
                xo = tl.load(x_ptr + 2 * kb + 1, mask=2 * kb + 1 < K, other=0.0)
            w_lo = (c_lo - zf[:, None]) * s[:, None]
            w_hi = (c_hi - zf[:, None]) * s[:, None]
            acc += w_lo.to(tl.float32) * xe.to(tl.float32)[None, :]
            acc += w_hi.to(tl.float32) * xo.to(tl.float32)[None, :]
        byt = byt_next
        s, zf = s_next, zf_next

    out = tl.sum(acc, axis=1)
    _splitk_finish(out, y_ptr + offs_n, ws_ptr + offs_n, n_mask, b_ptr, offs_n, n_mask, lock_ptr, pid_n, pid_k,
                   1, N, SPLIT_K, HAS_BIAS)



_heur = triton.heuristics({"EVEN_K": even_k, "X_PAIRS": x_pairs, "USE_ASM": use_asm})(_gemv_kernel)
# The tuning space, times split factors; no cp.async stages: the kernel prefetches in registers
_TILES = [
    ByteGemvConfig(block_n=32, block_k=128, num_warps=4), ByteGemvConfig(block_n=64, block_k=128, num_warps=4),
    ByteGemvConfig(block_n=128, block_k=128, num_warps=4), ByteGemvConfig(block_n=128, block_k=128, num_warps=8),
    ByteGemvConfig(block_n=16, block_k=256, num_warps=4), ByteGemvConfig(block_n=32, block_k=256, num_warps=4),
    ByteGemvConfig(block_n=16, block_k=512, num_warps=4), ByteGemvConfig(block_n=32, block_k=64, num_warps=4),
    ByteGemvConfig(block_n=64, block_k=64, num_warps=4), ByteGemvConfig(block_n=128, block_k=64, num_warps=8),
    ByteGemvConfig(block_n=128, block_k=32, num_warps=4), ByteGemvConfig(block_n=256, block_k=32, num_warps=8),
]
_SPLITS = (1, 2, 4, 8)  # SPLIT_K is a runtime argument: splits multiply benchmarks, not compilations

tuned = autotuned(_heur, [triton.Config({"BLOCK_N": t.block_n, "BLOCK_K": t.block_k, "SPLIT_K": sk},
                                        num_warps=t.num_warps, num_stages=t.num_stages)
                          for t in _TILES for sk in _SPLITS], prune_split_k_tiles)


def launch(problem: MatmulProblem, ops: Operands, config: ByteGemvConfig | None, state: LaunchState) -> None:
    n = problem.n
    ws = split_k_workspace(problem, config is not None and config.split_k > 1, ops.x.device)
    args, common = ops.split_k_args(ws, state.split_k_locks(ops.x.device, n)), ops.common(problem)
    if problem.tuned:
        tuned[lambda meta: (triton.cdiv(n, meta["BLOCK_N"]), meta["SPLIT_K"])](*args, **common)
        state.last["decode"], state.last["decode_pdl"] = tuned.best_config, False
        return
    c = config or default_config(problem)
    _heur[(triton.cdiv(n, c.block_n), c.split_k)](
        *args, **common, SPLIT_K=c.split_k, BLOCK_N=c.block_n, BLOCK_K=c.block_k, num_warps=c.num_warps,
        num_stages=c.num_stages)
    state.last["decode_pdl"] = False
