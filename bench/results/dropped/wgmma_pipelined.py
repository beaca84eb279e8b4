"""DROPPED (bench/README.md, "Fused dequantize + wgmma in Gluon"): the single-partition version of
wgmma_dequant.py. Every warp of the program, in turn: waits for the step's TMA (x and code
tiles, STAGES - 2 steps ahead), dequantizes its share of the W tile, waits for wgmma i - 2,
stores the tile into one of two W buffers, fences, and issues wgmma i asynchronously, so the
dequantize of step i + 1 runs under wgmma i. 0.68-0.74x cuBLAS at M = 2048 (median, best tile).
MODE (a diagnostic): 1 stores a constant W tile (no code reads, no dequantize), 2 also skips
the store: 0.95-1.04x and 1.06-1.13x cuBLAS, so the dequantize, not the pipeline, costs the rest.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import triton
from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.hopper import (
    fence_async_shared,
    mbarrier,
    warpgroup_mma,
    warpgroup_mma_init,
    warpgroup_mma_wait,
)
from triton.experimental.gluon.nvidia.hopper import TensorDescriptor

# The dequantize helpers (the PTX block, layouts, scale loads) are the warp-specialized kernel's.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from wgmma_dequant import _acc_layout, _code_layout, _dequant_codes, _issue_loads, _scale_zero, _tile_offsets


@gluon.jit
def _dequant_wgmma_kernel(
    x_desc, c_desc, s_ptr, z_ptr, b_ptr, y_ptr,
    M, N, K, GROUP, stride_sn, stride_zn, stride_zg, stride_ym,
    SYM: gl.constexpr, HAS_BIAS: gl.constexpr, STAGES: gl.constexpr, GROUP_M: gl.constexpr,
    num_warps: gl.constexpr, MODE: gl.constexpr = 0,
):
    BM: gl.constexpr = x_desc.block_type.shape[0]
    BK: gl.constexpr = x_desc.block_type.shape[1]
    BN: gl.constexpr = c_desc.block_type.shape[0]
    BKB: gl.constexpr = c_desc.block_type.shape[1]
    gl.static_assert(BKB * 2 == BK)
    gl.static_assert(STAGES >= 3)

    off_m, off_n = _tile_offsets(M, N, BM, BN, GROUP_M)

    x_bufs = gl.allocate_shared_memory(gl.float16, [STAGES, BM, BK], x_desc.layout)
    c_bufs = gl.allocate_shared_memory(gl.uint8, [STAGES, BN, BKB], c_desc.layout)
    w_layout: gl.constexpr = gl.NVMMASharedLayout.get_default_for([BN, BK], gl.float16)
    w_bufs = gl.allocate_shared_memory(gl.float16, [2, BN, BK], w_layout)
    bars = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    for i in gl.static_range(STAGES):
        mbarrier.init(bars.index(i), count=1)

    code_layout: gl.constexpr = _code_layout(BN, BKB, num_warps)
    acc_layout: gl.constexpr = _acc_layout(BM, BN, num_warps)
    rows = off_n + gl.arange(0, BN, layout=gl.SliceLayout(1, code_layout))
    row_ok = rows < N
    ksteps = gl.cdiv(K, BK)

    for i in gl.static_range(STAGES - 2):
        _issue_loads(x_desc, c_desc, x_bufs, c_bufs, bars, i, off_m, off_n, i < ksteps, STAGES)

    # Scales run two steps ahead in registers, loaded after the step's shared-memory fence: the
    # fence (MEMBAR) waits for the thread's loads in flight, so a load issued before it would stall it.
    s, zf = _scale_zero(s_ptr, z_ptr, rows, row_ok, 0, K, GROUP, stride_sn, stride_zn, stride_zg, SYM)
    s1, zf1 = _scale_zero(s_ptr, z_ptr, rows, row_ok, BK, K, GROUP, stride_sn, stride_zn, stride_zg, SYM)
    acc = warpgroup_mma_init(gl.zeros((BM, BN), dtype=gl.float32, layout=acc_layout))
    for i in range(ksteps):
        st = i % STAGES
        mbarrier.wait(bars.index(st), (i // STAGES) & 1)
        if MODE == 0:
            codes = c_bufs.index(st).load(code_layout)
            w = _dequant_codes(codes, s, zf, BN, BK)
        else:
            w = gl.full([BN, BK], 0.01, gl.float16, gl.BlockedLayout([1, 32], [16, 2], [num_warps, 1], [1, 0]))
        # wgmma i - 2 (every warpgroup's) is done: its W buffer and its load stage are free.
        acc = warpgroup_mma_wait(num_outstanding=1, deps=(acc, ))
        gl.thread_barrier()
        nxt = i + STAGES - 2
        _issue_loads(x_desc, c_desc, x_bufs, c_bufs, bars, nxt, off_m, off_n, nxt < ksteps, STAGES)
        wb = w_bufs.index(i % 2)
        if MODE < 2:
            wb.store(w)
            fence_async_shared()
        gl.thread_barrier()
        acc = warpgroup_mma(x_bufs.index(st), wb.permute((1, 0)), acc, is_async=True)
        s, zf = s1, zf1
        s1, zf1 = _scale_zero(s_ptr, z_ptr, rows, row_ok, (i + 2) * BK, K, GROUP, stride_sn, stride_zn,
                              stride_zg, SYM)
    acc = warpgroup_mma_wait(num_outstanding=0, deps=(acc, ))
    for i in gl.static_range(STAGES):
        mbarrier.invalidate(bars.index(i))

    offs_m = off_m + gl.arange(0, BM, layout=gl.SliceLayout(1, acc_layout))
    offs_n = off_n + gl.arange(0, BN, layout=gl.SliceLayout(0, acc_layout))
    n_ok = offs_n < N
    if HAS_BIAS:
        acc += gl.expand_dims(gl.load(b_ptr + offs_n, mask=n_ok, other=0.0).to(gl.float32), 0)
    y_ptrs = y_ptr + gl.expand_dims(offs_m, 1) * stride_ym + gl.expand_dims(offs_n, 0)
    gl.store(y_ptrs, acc.to(gl.float16), mask=gl.expand_dims(offs_m < M, 1) & gl.expand_dims(n_ok, 0))


def dequant_wgmma_matmul(x2: torch.Tensor, codes: torch.Tensor, scales: torch.Tensor, z: torch.Tensor | None,
                         stride_zn: int, stride_zg: int, group: int, bias: torch.Tensor | None, y: torch.Tensor,
                         block: tuple[int, int, int] = (128, 256, 64), stages: int = 4, num_warps: int = 8,
                         group_m: int = 8, mode: int = 0) -> None:
    """y[M, N] = x2[M, K] @ dequant(codes)^T (+ bias); codes uint8 [N, K/2], scales fp16 [N, G]."""
    m, k = x2.shape
    n = codes.shape[0]
    bm, bn, bk = block
    x_layout = gl.NVMMASharedLayout.get_default_for([bm, bk], gl.float16)
    c_layout = gl.NVMMASharedLayout.get_default_for([bn, bk // 2], gl.uint8)
    x_desc = TensorDescriptor.from_tensor(x2, [bm, bk], x_layout)
    c_desc = TensorDescriptor.from_tensor(codes, [bn, bk // 2], c_layout)
    grid = (triton.cdiv(m, bm) * triton.cdiv(n, bn), )
    _dequant_wgmma_kernel[grid](
        x_desc, c_desc, scales, z if z is not None else scales, bias if bias is not None else scales, y,
        m, n, k, group, scales.stride(0), stride_zn, stride_zg, y.stride(0),
        z is None, bias is not None, stages, group_m, num_warps=num_warps, MODE=mode)
