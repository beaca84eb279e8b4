"""DROPPED (bench/README.md, "Fused dequantize + wgmma in Gluon"): int4 dequantize fused into a
warp-specialized wgmma GEMM for large M on Hopper, in Gluon (Triton 3.6's explicit dialect).

One program computes a [BM, BN] tile of y = x @ dequant(W)^T (fp16 x, int4 codes, group size a
multiple of BK, or per-channel):
* the kernel's warps (the default partition, 2 warpgroups) issue one async wgmma a step, keep
  one in flight, and refill a ring stage by TMA (x tile and code tile) once its wgmma is done
  and its codes are read;
* DQ_WARPS more warps (a worker partition) read each step's codes from shared memory, compute
  (q - z) * s in fp16 as `kernels/wo_matmul._dequant_tile` does, and write the fp16 W tile into a
  ring of WBUF buffers, up to WBUF steps ahead of the wgmma warps (mbarriers both ways).
Correct on every checked case (30/30, relative error 2.3e-4 to 2.8e-4) but 0.73-0.75x cuBLAS
at M = 2048 (median of the 10 layers; dequantize + cuBLAS: 0.87-0.88x in the same runs).
NOLDG (a diagnostic) replaces the per-step scale loads by the first step's scales.
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
    warpgroup_mma_wait,
)
from triton.experimental.gluon.nvidia.hopper import TensorDescriptor

# The PTX block, scale loads, stage loads and tile order are the landed kernel's (kernels/wgmma_int4.py).
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from kernels.wgmma_int4 import (  # noqa: E402
    _INT4_DEQUANT_ASM,
    _load_scale_zero,
    _load_step,
    _tile_coords,
    _zero_fp16,
)


# One tile a program: the landed kernel's tile order and stage loads before it became persistent.
@gluon.jit
def _tile_offsets(M, N, BM: gl.constexpr, BN: gl.constexpr, GROUP_M: gl.constexpr):
    """`_tile_coords` of a one-tile-a-program grid."""
    return _tile_coords(gl.program_id(0), M, N, BM, BN, GROUP_M)


@gluon.jit
def _issue_loads(x_desc, c_desc, x_bufs, c_bufs, bars, step, off_m, off_n, pred, STAGES: gl.constexpr):
    """`_load_step` into stage step % STAGES."""
    st = step % STAGES
    _load_step(x_desc, c_desc, x_bufs.index(st), c_bufs.index(st), bars.index(st), step, off_m, off_n, pred)


@gluon.jit
def _scale_zero(s_ptr, z_ptr, rows, row_ok, k0, K, GROUP, stride_sn, stride_zn, stride_zg, SYM: gl.constexpr):
    """Scale and 1024 + zero point (fp16) of each row for the group holding input k0; these kernels
    convert the zero point where it is loaded (the landed kernel converts it where it is used)."""
    s, z = _load_scale_zero(s_ptr, z_ptr, rows, row_ok, k0, K, GROUP, stride_sn, stride_zn, stride_zg, SYM)
    return s, _zero_fp16(z)


@gluon.constexpr_function
def _code_layout(BN, BKB, num_warps):
    # 16 bytes (one 128-bit shared load) of one row a thread: 32 codes, inside one scale group.
    per_row = BKB // 16
    return gl.BlockedLayout([1, 16], [32 // per_row, per_row], [num_warps, 1], [1, 0])


@gluon.constexpr_function
def _acc_layout(BM, BN, num_warps):
    warps = [4, 1]
    while warps[0] * warps[1] != num_warps:
        if BM > 16 * warps[0]:
            warps[0] *= 2
        else:
            warps[1] *= 2
    n = 256
    max_n = max(BN // triton.cdiv(num_warps, triton.cdiv(BM, 16)), 8)
    while n > max_n or BN % n != 0:
        n -= 8
    return gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=warps, instr_shape=[16, n, 16])


@gluon.jit
def _dequant_codes(codes, s, zf, BN: gl.constexpr, BK: gl.constexpr):
    """Code bytes [BN, BK / 2] -> (q - z) * s [BN, BK] fp16, inputs in stored order."""
    zl = gl.broadcast(gl.expand_dims(zf, 1), codes)[0]
    zh = gl.broadcast(gl.expand_dims(960.0 - zf, 1), codes)[0]  # -(64 + z), exact in fp16
    sb = gl.broadcast(gl.expand_dims(s, 1), codes)[0]
    lo, hi = gl.inline_asm_elementwise(
        asm=_INT4_DEQUANT_ASM, constraints="=r,=r,=r,=r,r,r,r,r,r,r,r",
        args=[codes, zl, zh, sb], dtype=(gl.float16, gl.float16), is_pure=True, pack=4)
    return gl.reshape(gl.join(lo, hi), [BN, BK])


@gluon.jit
def _dequant_partition(c_bufs, w_bufs, ready, c_free, w_ready, w_empty, s_ptr, z_ptr, off_n, N, K, GROUP,
                       stride_sn, stride_zn, stride_zg, ksteps, SYM: gl.constexpr, STAGES: gl.constexpr,
                       WBUF: gl.constexpr, BK: gl.constexpr, DQ_WARPS: gl.constexpr, NOLDG: gl.constexpr):
    """DQ_WARPS warps: codes of each step -> fp16 W tile in the W ring, up to WBUF steps ahead of the
    wgmma warps."""
    BN: gl.constexpr = c_bufs.type.shape[1]
    BKB: gl.constexpr = c_bufs.type.shape[2]
    code_layout: gl.constexpr = _code_layout(BN, BKB, DQ_WARPS)
    rows = off_n + gl.arange(0, BN, layout=gl.SliceLayout(1, code_layout))
    row_ok = rows < N
    s, zf = _scale_zero(s_ptr, z_ptr, rows, row_ok, 0, K, GROUP, stride_sn, stride_zn, stride_zg, SYM)
    for i in range(ksteps):
        st = i % STAGES
        wb = i % WBUF
        mbarrier.wait(ready.index(st), (i // STAGES) & 1)
        codes = c_bufs.index(st).load(code_layout)
        gl.thread_barrier()
        mbarrier.arrive(c_free.index(st), count=1)
        if NOLDG:
            s1, zf1 = s, zf
        else:
            s1, zf1 = _scale_zero(s_ptr, z_ptr, rows, row_ok, (i + 1) * BK, K, GROUP, stride_sn, stride_zn,
                                  stride_zg, SYM)
        w = _dequant_codes(codes, s, zf, BN, BK)
        mbarrier.wait(w_empty.index(wb), ((i // WBUF) & 1) ^ 1)
        w_bufs.index(wb).store(w)
        fence_async_shared()
        gl.thread_barrier()
        mbarrier.arrive(w_ready.index(wb), count=1)
        s, zf = s1, zf1


@gluon.jit
def _mma_partition(x_desc, c_desc, x_bufs, c_bufs, w_bufs, ready, c_free, w_ready, w_empty, off_m, off_n, ksteps,
                   STAGES: gl.constexpr, WBUF: gl.constexpr, num_warps: gl.constexpr):
    """The kernel's warps: one async wgmma a step, keeping one in flight, and the TMA loads that refill
    a stage once its wgmma is done and its codes are read; returns the fp32 tile."""
    BM: gl.constexpr = x_bufs.type.shape[1]
    BN: gl.constexpr = w_bufs.type.shape[1]
    for j in gl.static_range(STAGES):
        _issue_loads(x_desc, c_desc, x_bufs, c_bufs, ready, j, off_m, off_n, j < ksteps, STAGES)
    acc = gl.zeros((BM, BN), dtype=gl.float32, layout=_acc_layout(BM, BN, num_warps))
    for i in range(ksteps):
        st = i % STAGES
        wb = i % WBUF
        mbarrier.wait(ready.index(st), (i // STAGES) & 1)
        mbarrier.wait(w_ready.index(wb), (i // WBUF) & 1)
        acc = warpgroup_mma(x_bufs.index(st), w_bufs.index(wb).permute((1, 0)), acc, is_async=True)
        acc = warpgroup_mma_wait(num_outstanding=1, deps=(acc, ))
        # every warpgroup's wgmma i - 1 is done: its W buffer goes back to the dequantize warps and
        # its stage (codes read too) is refilled with step i - 1 + STAGES
        gl.thread_barrier()
        prev = i + STAGES - 1
        refill = (i > 0) & (prev < ksteps)
        mbarrier.arrive(w_empty.index((i + WBUF - 1) % WBUF), count=1, pred=i > 0)
        mbarrier.wait(c_free.index(prev % STAGES), ((i - 1) // STAGES) & 1, pred=refill)
        fence_async_shared()
        _issue_loads(x_desc, c_desc, x_bufs, c_bufs, ready, prev, off_m, off_n, refill, STAGES)
    return (warpgroup_mma_wait(num_outstanding=0, deps=(acc, )), )


@gluon.jit
def _dequant_wgmma_kernel(
    x_desc, c_desc, s_ptr, z_ptr, b_ptr, y_ptr,
    M, N, K, GROUP, stride_sn, stride_zn, stride_zg, stride_ym,
    SYM: gl.constexpr, HAS_BIAS: gl.constexpr, STAGES: gl.constexpr, WBUF: gl.constexpr,
    DQ_WARPS: gl.constexpr, DQ_REGS: gl.constexpr, GROUP_M: gl.constexpr, num_warps: gl.constexpr, NOLDG: gl.constexpr = False,
):
    BM: gl.constexpr = x_desc.block_type.shape[0]
    BK: gl.constexpr = x_desc.block_type.shape[1]
    BN: gl.constexpr = c_desc.block_type.shape[0]
    BKB: gl.constexpr = c_desc.block_type.shape[1]
    gl.static_assert(BKB * 2 == BK)

    off_m, off_n = _tile_offsets(M, N, BM, BN, GROUP_M)
    ksteps = gl.cdiv(K, BK)

    x_bufs = gl.allocate_shared_memory(gl.float16, [STAGES, BM, BK], x_desc.layout)
    c_bufs = gl.allocate_shared_memory(gl.uint8, [STAGES, BN, BKB], c_desc.layout)
    w_bufs = gl.allocate_shared_memory(gl.float16, [WBUF, BN, BK],
                                       gl.NVMMASharedLayout.get_default_for([BN, BK], gl.float16))
    ready = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    c_free = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    w_ready = gl.allocate_shared_memory(gl.int64, [WBUF, 1], mbarrier.MBarrierLayout())
    w_empty = gl.allocate_shared_memory(gl.int64, [WBUF, 1], mbarrier.MBarrierLayout())
    for i in gl.static_range(STAGES):
        mbarrier.init(ready.index(i), count=1)
        mbarrier.init(c_free.index(i), count=1)
    for i in gl.static_range(WBUF):
        mbarrier.init(w_ready.index(i), count=1)
        mbarrier.init(w_empty.index(i), count=1)

    acc, = gl.warp_specialize([
        (_mma_partition, (x_desc, c_desc, x_bufs, c_bufs, w_bufs, ready, c_free, w_ready, w_empty, off_m, off_n,
                          ksteps, STAGES, WBUF, num_warps)),
        (_dequant_partition, (c_bufs, w_bufs, ready, c_free, w_ready, w_empty, s_ptr, z_ptr, off_n, N, K, GROUP,
                              stride_sn, stride_zn, stride_zg, ksteps, SYM, STAGES, WBUF, BK, DQ_WARPS, NOLDG)),
    ], [DQ_WARPS], [DQ_REGS])

    acc_layout: gl.constexpr = _acc_layout(BM, BN, num_warps)
    offs_m = off_m + gl.arange(0, BM, layout=gl.SliceLayout(1, acc_layout))
    offs_n = off_n + gl.arange(0, BN, layout=gl.SliceLayout(0, acc_layout))
    n_ok = offs_n < N
    if HAS_BIAS:
        acc += gl.expand_dims(gl.load(b_ptr + offs_n, mask=n_ok, other=0.0).to(gl.float32), 0)
    y_ptrs = y_ptr + gl.expand_dims(offs_m, 1) * stride_ym + gl.expand_dims(offs_n, 0)
    gl.store(y_ptrs, acc.to(gl.float16), mask=gl.expand_dims(offs_m < M, 1) & gl.expand_dims(n_ok, 0))


def supported(x: torch.Tensor, bits: int, group: int, k: int, block_k: int = 64) -> bool:
    """Whether the fused kernel takes this problem: sm_90 (wgmma), fp16 x, int4 codes whose rows
    TMA can address (K a multiple of 32), scale groups a whole number of K steps."""
    return (x.is_cuda and torch.cuda.get_device_capability(x.device)[0] == 9 and x.dtype == torch.float16
            and bits == 4 and k % 32 == 0 and group % block_k == 0 and x.stride(-1) == 1
            and (x.stride(0) * 2) % 16 == 0 and x.data_ptr() % 16 == 0)


def dequant_wgmma_matmul(x2: torch.Tensor, codes: torch.Tensor, scales: torch.Tensor, z: torch.Tensor | None,
                         stride_zn: int, stride_zg: int, group: int, bias: torch.Tensor | None, y: torch.Tensor,
                         block: tuple[int, int, int] = (128, 256, 64), stages: int = 4, num_warps: int = 8,
                         wbuf: int = 2, dq_warps: int = 4, dq_regs: int = 112, maxnreg: int = 168,
                         group_m: int = 8, noldg: bool = False) -> None:
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
        z is None, bias is not None, stages, wbuf, dq_warps, dq_regs, group_m, num_warps=num_warps, maxnreg=maxnreg, NOLDG=noldg)
