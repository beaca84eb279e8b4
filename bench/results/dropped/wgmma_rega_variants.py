"""The variants of the register-operand fused int4 dequantize + wgmma GEMM (Gluon, Triton 3.6)
swept on the H100 (bench/README.md, "Fused dequantize + wgmma: W as the register operand").
The one that landed, warp-specialized with one TMA warp, two A fragments, 128 x 256 x 64 tiles
and 4 stages (WS=True, NBUF=2, EPI=1), is kernels/wgmma_int4.py; the others were dropped:
no TMA warp (0.83-0.84x cuBLAS at M = 2048, sym), three A fragments (NBUF=3, 0.85-0.89x),
K steps of 128 (0.87x), 128 x 128 and 64 x 256 tiles (0.65-0.68x), the accumulator's own
layout for the stores (EPI=0, 0.81x), two consumer warpgroups in separate partitions (SPLIT:
ptxas serializes the wgmmas for want of registers). MODE=1 (a constant A tile) is a diagnostic.

y = x @ dequant(W)^T is computed transposed, y^T[BN, BM] = W[BN, BK] . x^T[BK, BM], so that W is
wgmma's A operand, which may live in registers: each warp dequantizes its own 16 W rows straight
into the A fragment and hands it to wgmma, and only x (by TMA) goes through shared memory. No W
tile is stored, so there is no generic-to-async proxy fence (a MEMBAR that waits for every load
in flight) and no barrier between the dequantize and the wgmma.

The code bytes are read from shared memory in the fragment's own order: thread (g, t) of a warp
holds rows g and g + 8 and, of every 8 code bytes (16 inputs), bytes t and t + 4, whose nibbles
are exactly inputs 2t, 2t + 1, 2t + 8, 2t + 9 of the A fragment; the dequantized tile's layout is
then the fragment's, and the conversion is free (asserted at compile time).

Two A fragments alternate (the loop body does two K steps) so that the dequantize of step i + 1
writes registers no wgmma in flight reads: ptxas would otherwise serialize the wgmmas.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import triton
from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.hopper import (
    mbarrier,
    warpgroup_mma,
    warpgroup_mma_wait,
)
from triton.experimental.gluon.nvidia.hopper import TensorDescriptor

# The dequantize helpers (the PTX block, layouts, scale loads) are the landed kernel's; since it
# became persistent (one program per SM), its zero points stay codes until `_dequant_fragment`
# converts them, so `_scale_zero` here is its `_load_scale_zero` and `zf` holds codes.
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from kernels.wgmma_int4 import (  # noqa: E402
    _acc_layout,
    _code_layout,
    _dequant_fragment,
)
from kernels.wgmma_int4 import _load_scale_zero as _scale_zero  # noqa: E402
from wgmma_dequant import _issue_loads, _tile_offsets  # noqa: E402  (one tile a program)


@gluon.jit
def _load_partition(x_desc, c_desc, x_bufs, c_bufs, ready, empty, off_m, off_n, K, STAGES: gl.constexpr):
    """One warp: the TMA loads of x and code tiles, a stage as soon as the wgmma warps free it (the
    landed kernel's loader before it became persistent)."""
    for i in range(K // x_desc.block_type.shape[1]):
        # a fresh barrier passes the wait for the phase before its first
        mbarrier.wait(empty.index(i % STAGES), ((i // STAGES) & 1) ^ 1)
        _issue_loads(x_desc, c_desc, x_bufs, c_bufs, ready, i, off_m, off_n, True, STAGES)


@gluon.jit
def _front(i, a, acc, x_bufs, c_bufs, ready, s_ptr, z_ptr, rows, row_ok, K, GROUP, stride_sn, stride_zn,
           stride_zg, s, zf, SYM: gl.constexpr, STAGES: gl.constexpr, BK: gl.constexpr,
           a_layout: gl.constexpr, code_layout: gl.constexpr, MODE: gl.constexpr, PART: gl.constexpr):
    """K step i: dequantize into `a` (registers no wgmma in flight reads) and issue wgmma i."""
    st = i % STAGES
    mbarrier.wait(ready.index(st), (i // STAGES) & 1)
    if MODE == 0:
        c_buf = c_bufs.index(st)
        if PART >= 0:  # SPLIT: this warpgroup's half of the code tile
            c_buf = c_buf.slice(PART * (c_buf.type.shape[0] // 2), c_buf.type.shape[0] // 2, dim=0)
        a = _dequant_fragment(c_buf, s, zf, a_layout, code_layout)
    else:  # diagnostic: a constant tile, no code reads and no dequantize
        a = gl.full(a.shape, 0.01, gl.float16, a_layout)
    # the next step's scales, issued after this step's fence so that it does not wait for them
    s1, zf1 = _scale_zero(s_ptr, z_ptr, rows, row_ok, (i + 1) * BK, K, GROUP, stride_sn, stride_zn, stride_zg, SYM)
    acc = warpgroup_mma(a, x_bufs.index(st).permute((1, 0)), acc, is_async=True)
    return a, acc, s1, zf1


@gluon.jit
def _back(i, ksteps, x_desc, c_desc, x_bufs, c_bufs, ready, empty, off_m, off_n, STAGES: gl.constexpr,
          NBUF: gl.constexpr, WS: gl.constexpr):
    """After waiting for wgmma i - NBUF + 1 (every warp's): free its stage, which takes step
    i - NBUF + 1 + STAGES (a stage not used yet while that is negative). WS: tell the loader."""
    gl.thread_barrier()
    nxt = i + STAGES - NBUF + 1
    if WS:
        mbarrier.arrive(empty.index(nxt % STAGES), count=1, pred=i >= NBUF - 1)
    else:
        _issue_loads(x_desc, c_desc, x_bufs, c_bufs, ready, nxt, off_m, off_n, nxt < ksteps, STAGES)


@gluon.jit
def _mainloop(x_desc, c_desc, x_bufs, c_bufs, ready, empty, s_ptr, z_ptr, off_m, off_n, N, K, GROUP,
              stride_sn, stride_zn, stride_zg, SYM: gl.constexpr, STAGES: gl.constexpr, NBUF: gl.constexpr,
              WS: gl.constexpr, MODE: gl.constexpr, num_warps: gl.constexpr, PART: gl.constexpr = -1):
    """The program's num_warps warps: the fp32 tile y^T[BN, BM]. NBUF A fragments rotate, so NBUF - 1
    wgmmas stay in flight while the next step is dequantized; the loop body does NBUF steps."""
    BM: gl.constexpr = x_desc.block_type.shape[0]
    BK: gl.constexpr = x_desc.block_type.shape[1]
    BN: gl.constexpr = c_bufs.type.shape[1] // (1 if PART < 0 else 2)
    BKB: gl.constexpr = c_bufs.type.shape[2]
    gl.static_assert((NBUF == 2) | (NBUF == 3))
    acc_layout: gl.constexpr = _acc_layout(BN, BM, num_warps)
    a_layout: gl.constexpr = gl.DotOperandLayout(operand_index=0, parent=acc_layout, k_width=2)
    code_layout: gl.constexpr = _code_layout(BN, BKB, num_warps)
    rows = off_n + gl.arange(0, BN, layout=gl.SliceLayout(1, code_layout))
    row_ok = rows < N
    ksteps = gl.cdiv(K, BK)
    if not WS:
        for p in gl.static_range(STAGES - NBUF + 1):
            _issue_loads(x_desc, c_desc, x_bufs, c_bufs, ready, p, off_m, off_n, p < ksteps, STAGES)

    s, zf = _scale_zero(s_ptr, z_ptr, rows, row_ok, 0, K, GROUP, stride_sn, stride_zn, stride_zg, SYM)
    acc = gl.zeros((BN, BM), dtype=gl.float32, layout=acc_layout)
    a0 = gl.zeros((BN, BK), dtype=gl.float16, layout=a_layout)
    a1 = gl.zeros((BN, BK), dtype=gl.float16, layout=a_layout)
    a2 = gl.zeros((BN, BK), dtype=gl.float16, layout=a_layout)
    if NBUF == 2:
        for j in range(ksteps // 2):
            for u in gl.static_range(2):
                i = 2 * j + u
                if u == 0:
                    a0, acc, s, zf = _front(i, a0, acc, x_bufs, c_bufs, ready, s_ptr, z_ptr, rows, row_ok, K, GROUP,
                                            stride_sn, stride_zn, stride_zg, s, zf, SYM, STAGES, BK, a_layout,
                                            code_layout, MODE, PART)
                else:
                    a1, acc, s, zf = _front(i, a1, acc, x_bufs, c_bufs, ready, s_ptr, z_ptr, rows, row_ok, K, GROUP,
                                            stride_sn, stride_zn, stride_zg, s, zf, SYM, STAGES, BK, a_layout,
                                            code_layout, MODE, PART)
                acc, a0, a1 = warpgroup_mma_wait(num_outstanding=1, deps=(acc, a0, a1))
                _back(i, ksteps, x_desc, c_desc, x_bufs, c_bufs, ready, empty, off_m, off_n, STAGES, NBUF, WS)
        if ksteps % 2 == 1:
            a0, acc, s, zf = _front(ksteps - 1, a0, acc, x_bufs, c_bufs, ready, s_ptr, z_ptr, rows, row_ok, K, GROUP,
                                    stride_sn, stride_zn, stride_zg, s, zf, SYM, STAGES, BK, a_layout, code_layout,
                                    MODE, PART)
            acc, a0, a1 = warpgroup_mma_wait(num_outstanding=1, deps=(acc, a0, a1))
    else:
        for j in range(ksteps // 3):
            for u in gl.static_range(3):
                i = 3 * j + u
                if u == 0:
                    a0, acc, s, zf = _front(i, a0, acc, x_bufs, c_bufs, ready, s_ptr, z_ptr, rows, row_ok, K, GROUP,
                                            stride_sn, stride_zn, stride_zg, s, zf, SYM, STAGES, BK, a_layout,
                                            code_layout, MODE, PART)
                elif u == 1:
                    a1, acc, s, zf = _front(i, a1, acc, x_bufs, c_bufs, ready, s_ptr, z_ptr, rows, row_ok, K, GROUP,
                                            stride_sn, stride_zn, stride_zg, s, zf, SYM, STAGES, BK, a_layout,
                                            code_layout, MODE, PART)
                else:
                    a2, acc, s, zf = _front(i, a2, acc, x_bufs, c_bufs, ready, s_ptr, z_ptr, rows, row_ok, K, GROUP,
                                            stride_sn, stride_zn, stride_zg, s, zf, SYM, STAGES, BK, a_layout,
                                            code_layout, MODE, PART)
                acc, a0, a1, a2 = warpgroup_mma_wait(num_outstanding=2, deps=(acc, a0, a1, a2))
                _back(i, ksteps, x_desc, c_desc, x_bufs, c_bufs, ready, empty, off_m, off_n, STAGES, NBUF, WS)
        # the last one or two steps (no stage to free any more: nothing is left to load)
        if ksteps % 3 >= 1:
            a0, acc, s, zf = _front(ksteps - ksteps % 3, a0, acc, x_bufs, c_bufs, ready, s_ptr, z_ptr, rows, row_ok,
                                    K, GROUP, stride_sn, stride_zn, stride_zg, s, zf, SYM, STAGES, BK, a_layout,
                                    code_layout, MODE, PART)
            acc, a0, a1, a2 = warpgroup_mma_wait(num_outstanding=2, deps=(acc, a0, a1, a2))
        if ksteps % 3 == 2:
            a1, acc, s, zf = _front(ksteps - 1, a1, acc, x_bufs, c_bufs, ready, s_ptr, z_ptr, rows, row_ok, K, GROUP,
                                    stride_sn, stride_zn, stride_zg, s, zf, SYM, STAGES, BK, a_layout, code_layout,
                                    MODE, PART)
            acc, a0, a1, a2 = warpgroup_mma_wait(num_outstanding=2, deps=(acc, a0, a1, a2))
    acc, a0, a1, a2 = warpgroup_mma_wait(num_outstanding=0, deps=(acc, a0, a1, a2))
    return (acc, )


@gluon.jit
def _epilogue(acc, b_ptr, y_ptr, off_m, off_n, M, N, stride_ym, HAS_BIAS: gl.constexpr, EPI: gl.constexpr,
              num_warps: gl.constexpr):
    """acc is y^T[BN, BM]: rows are outputs n, columns are x rows m."""
    BN: gl.constexpr = acc.type.shape[0]
    BM: gl.constexpr = acc.type.shape[1]
    if EPI == 0:
        out_layout: gl.constexpr = acc.type.layout
        out = acc
    else:
        # n fastest across a warp's lanes: 8 consecutive outputs a thread, 128-byte rows of y
        out_layout: gl.constexpr = gl.BlockedLayout([8, 1], [8, 4], [1, num_warps], [0, 1])
        out = gl.convert_layout(acc, out_layout)
    offs_n = off_n + gl.arange(0, BN, layout=gl.SliceLayout(1, out_layout))
    offs_m = off_m + gl.arange(0, BM, layout=gl.SliceLayout(0, out_layout))
    n_ok = offs_n < N
    if HAS_BIAS:
        out += gl.expand_dims(gl.load(b_ptr + offs_n, mask=n_ok, other=0.0).to(gl.float32), 1)
    y_ptrs = y_ptr + gl.expand_dims(offs_m, 0) * stride_ym + gl.expand_dims(offs_n, 1)
    mask = gl.expand_dims(n_ok, 1) & gl.expand_dims(offs_m < M, 0)
    if EPI == 2:  # diagnostic: store only what a NaN would show, so the tile is computed but not written
        mask = mask & (out != out)
    gl.store(y_ptrs, out.to(gl.float16), mask=mask)


@gluon.jit
def _consumer(part: gl.constexpr, x_desc, c_desc, x_bufs, c_bufs, ready, empty, s_ptr, z_ptr, b_ptr, y_ptr, off_m,
              off_n, M, N, K, GROUP, stride_sn, stride_zn, stride_zg, stride_ym, SYM: gl.constexpr,
              HAS_BIAS: gl.constexpr, STAGES: gl.constexpr, NBUF: gl.constexpr, MODE: gl.constexpr,
              EPI: gl.constexpr):
    """SPLIT: one warpgroup's half of the W rows, its own K loop (the stage's `empty` barrier counts
    both halves) and its own epilogue, so the two warpgroups never wait for each other."""
    HALF: gl.constexpr = c_bufs.type.shape[1] // 2
    acc, = _mainloop(x_desc, c_desc, x_bufs, c_bufs, ready, empty, s_ptr, z_ptr, off_m, off_n + part * HALF, N, K,
                     GROUP, stride_sn, stride_zn, stride_zg, SYM, STAGES, NBUF, True, MODE, 4, part)
    _epilogue(acc, b_ptr, y_ptr, off_m, off_n + part * HALF, M, N, stride_ym, HAS_BIAS, EPI, 4)


@gluon.jit
def _rega_kernel(
    x_desc, c_desc, s_ptr, z_ptr, b_ptr, y_ptr,
    M, N, K, GROUP, stride_sn, stride_zn, stride_zg, stride_ym,
    SYM: gl.constexpr, HAS_BIAS: gl.constexpr, STAGES: gl.constexpr, GROUP_M: gl.constexpr,
    EPI: gl.constexpr, WS: gl.constexpr, NBUF: gl.constexpr, LOAD_WARPS: gl.constexpr, LOAD_REGS: gl.constexpr,
    MODE: gl.constexpr, SPLIT: gl.constexpr, CONSUMER_REGS: gl.constexpr, num_warps: gl.constexpr,
):
    BM: gl.constexpr = x_desc.block_type.shape[0]
    BK: gl.constexpr = x_desc.block_type.shape[1]
    BN: gl.constexpr = c_desc.block_type.shape[0]
    BKB: gl.constexpr = c_desc.block_type.shape[1]
    gl.static_assert(BKB * 2 == BK)
    gl.static_assert(BN == (32 if SPLIT else 16) * num_warps)

    off_m, off_n = _tile_offsets(M, N, BM, BN, GROUP_M)

    x_bufs = gl.allocate_shared_memory(gl.float16, [STAGES, BM, BK], x_desc.layout)
    c_bufs = gl.allocate_shared_memory(gl.uint8, [STAGES, BN, BKB], c_desc.layout)
    ready = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    empty = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    for i in gl.static_range(STAGES):
        mbarrier.init(ready.index(i), count=1)
        mbarrier.init(empty.index(i), count=2 if SPLIT else 1)

    if SPLIT:
        gl.warp_specialize([
            (_consumer, (0, x_desc, c_desc, x_bufs, c_bufs, ready, empty, s_ptr, z_ptr, b_ptr, y_ptr, off_m, off_n, M,
                         N, K, GROUP, stride_sn, stride_zn, stride_zg, stride_ym, SYM, HAS_BIAS, STAGES, NBUF, MODE,
                         EPI)),
            (_consumer, (1, x_desc, c_desc, x_bufs, c_bufs, ready, empty, s_ptr, z_ptr, b_ptr, y_ptr, off_m, off_n, M,
                         N, K, GROUP, stride_sn, stride_zn, stride_zg, stride_ym, SYM, HAS_BIAS, STAGES, NBUF, MODE,
                         EPI)),
            (_load_partition, (x_desc, c_desc, x_bufs, c_bufs, ready, empty, off_m, off_n, K, STAGES)),
        ], [4, LOAD_WARPS], [CONSUMER_REGS, LOAD_REGS])
    elif WS:
        acc, = gl.warp_specialize([
            (_mainloop, (x_desc, c_desc, x_bufs, c_bufs, ready, empty, s_ptr, z_ptr, off_m, off_n, N, K, GROUP,
                         stride_sn, stride_zn, stride_zg, SYM, STAGES, NBUF, WS, MODE, num_warps)),
            (_load_partition, (x_desc, c_desc, x_bufs, c_bufs, ready, empty, off_m, off_n, K, STAGES)),
        ], [LOAD_WARPS], [LOAD_REGS])
    else:
        acc, = _mainloop(x_desc, c_desc, x_bufs, c_bufs, ready, empty, s_ptr, z_ptr, off_m, off_n, N, K, GROUP,
                         stride_sn, stride_zn, stride_zg, SYM, STAGES, NBUF, WS, MODE, num_warps)
    for i in gl.static_range(STAGES):
        mbarrier.invalidate(ready.index(i))
        mbarrier.invalidate(empty.index(i))

    if not SPLIT:
        _epilogue(acc, b_ptr, y_ptr, off_m, off_n, M, N, stride_ym, HAS_BIAS, EPI, num_warps)


def rega_matmul(x2: torch.Tensor, codes: torch.Tensor, scales: torch.Tensor, z: torch.Tensor | None,
                stride_zn: int, stride_zg: int, group: int, bias: torch.Tensor | None, y: torch.Tensor,
                block: tuple[int, int, int] = (128, 256, 64), stages: int = 4, group_m: int = 8,
                epi: int = 1, ws: bool = False, nbuf: int = 2, load_warps: int = 1, load_regs: int = 24,
                split: bool = False, consumer_regs: int = 232, mode: int = 0) -> None:
    """y[M, N] = x2[M, K] @ dequant(codes)^T (+ bias); codes uint8 [N, K/2], scales fp16 [N, G].
    block = (W rows, x rows, K) of a tile; 16 W rows a warp."""
    m, k = x2.shape
    n = codes.shape[0]
    bn, bm, bk = block
    x_layout = gl.NVMMASharedLayout.get_default_for([bm, bk], gl.float16)
    c_layout = gl.NVMMASharedLayout.get_default_for([bn, bk // 2], gl.uint8)
    x_desc = TensorDescriptor.from_tensor(x2, [bm, bk], x_layout)
    c_desc = TensorDescriptor.from_tensor(codes, [bn, bk // 2], c_layout)
    grid = (triton.cdiv(m, bm) * triton.cdiv(n, bn), )
    _rega_kernel[grid](
        x_desc, c_desc, scales, z if z is not None else scales, bias if bias is not None else scales, y,
        m, n, k, group, scales.stride(0), stride_zn, stride_zg, y.stride(0),
        z is None, bias is not None, stages, group_m, epi, ws or split, nbuf, load_warps, load_regs, mode, split,
        consumer_regs, num_warps=bn // (32 if split else 16))
