"""Prefill path on Hopper (sm_90): fused int4 dequantize + wgmma GEMM, written in Gluon.

y = x @ dequant(W)^T is computed transposed, y^T[BN, BM] = W[BN, BK] . x^T[BK, BM], so that W is
wgmma's A operand, which may live in registers: each warp dequantizes its own 16 W rows from the
code bytes straight into the A fragment, and only x (TMA) and the codes (TMA) pass through shared
memory. No dequantized W tile is stored, so there is no generic-to-async proxy fence behind a
store and no barrier between the dequantize and the wgmma (storing the tile was what held the
earlier fused kernels well below cuBLAS; docs/kernels.md).

* The code bytes are read from shared memory in the fragment's own order: thread (g, t) of a warp
  holds rows g and g + 8 and, of every 8 code bytes (16 inputs), bytes t and t + 4, whose nibbles
  are exactly inputs 2t, 2t + 1, 2t + 8, 2t + 9 of the A fragment. The dequantized tile's layout
  is then the fragment's, and the conversion is free (asserted when the kernel compiles). The
  dequantize itself is `ptx.INT4_DEQUANT_SCALED`, the Triton kernels' block plus the scale.
* Two A fragments alternate (the loop body does two K steps) so that the dequantize of step i + 1
  writes registers that no wgmma in flight reads; ptxas would otherwise serialize the wgmmas.
* One extra warp issues the TMA loads into a ring of stages as the wgmma warps free them
  (mbarriers both ways), which keeps the loads' barriers out of the wgmma warps' loop.
* Persistent: one program an SM walks the output tiles. The loader runs on into the next tile
  while the wgmma warps store this one, through shared memory and a TMA store that is only
  waited for before the next tile's store.
* Scales and zero points are loaded once a scale group (two K steps when the group is a multiple
  of 128), and a zero point stays a code until the step that uses it converts it.

Only the stored layout the quantizers write is read (codes [N, K/2] bytes, scales [N, G], zero
points [N, G] bytes); no repacking. The tile (128 W rows x 256 x rows x 64) and the stage count
come from sweeps on the H100 (docs/kernels.md; 213 KB of shared memory with the y tile). There is
no interpreter for Gluon: the CPU tests cover the dispatch rule, the GPU tests the numbers.
"""

from __future__ import annotations

import torch
import triton

from autoquant.kernels.launch_state import LaunchState
from autoquant.kernels.problem import DEQUANT_MIN_M, MatmulProblem, Operands, num_sms, sm_count
from autoquant.kernels.ptx import INT4_DEQUANT_SCALED

try:  # Gluon (Triton >= 3.5); without it `supported` is False and the dequantize path runs
    from triton.experimental import gluon
    from triton.experimental.gluon import language as gl
    from triton.experimental.gluon.language.nvidia.hopper import (
        fence_async_shared,
        mbarrier,
        tma,
        warpgroup_mma,
        warpgroup_mma_wait,
    )
    from triton.experimental.gluon.nvidia.hopper import TensorDescriptor

    # The CTA-wide barrier: `gl.barrier` from Triton 3.7 on (the lock's), `gl.thread_barrier` before.
    _cta_barrier = getattr(gl, "barrier", None) or gl.thread_barrier
except ImportError:  # pragma: no cover - depends on the Triton install
    gluon = None

BLOCK = (128, 256, 64)  # W rows (16 a wgmma warp), x rows (wgmma's N), K a step
STAGES = 4
FUSED_MAX_M = 4096  # from here on dequantize + cuBLAS is as fast or faster (`pays_off`)


def tiles(m: int, n: int) -> int:
    """Output tiles of an [m, n] problem (the persistent grid runs min(tiles, SMs) programs)."""
    return triton.cdiv(m, BLOCK[1]) * triton.cdiv(n, BLOCK[0])


def pays_off(m: int, n: int, sms: int) -> bool:
    """Whether this kernel beats dequantize + cuBLAS here (measured over the benchmark layers,
    bench/results/prefill-paths-h100.json; docs/kernels.md):
    * tiles for at least 3/4 of the SMs: with fewer (k/v projections at small M) the persistent
      grid leaves SMs idle and dequantize + cuBLAS wins;
    * M below FUSED_MAX_M: the dequantize pass costs the same at any M, the fused dequantize a
      share of the GEMM, so from there on cuBLAS's GEMM wins more cases than it loses."""
    return m < FUSED_MAX_M and 4 * tiles(m, n) >= 3 * sms


def supported(x2: torch.Tensor, codes: torch.Tensor, scales: torch.Tensor, bits: int, group: int, k: int) -> bool:
    """Whether the kernel takes this problem: Gluon present, an sm_90 GPU (wgmma), fp16 x and
    scales, int4 codes, K a whole number of steps and scale groups of whole steps, and tensors TMA
    can address (16-byte aligned rows and bases, for y's store too: N a multiple of 8)."""
    return (gluon is not None and x2.is_cuda and torch.cuda.get_device_capability(x2.device)[0] == 9
            and x2.dtype == torch.float16 and scales.dtype == torch.float16 and bits == 4
            and k % BLOCK[2] == 0 and group % BLOCK[2] == 0
            and x2.stride(-1) == 1 and (x2.stride(0) * 2) % 16 == 0 and x2.data_ptr() % 16 == 0
            and codes.is_contiguous() and codes.data_ptr() % 16 == 0 and codes.shape[0] % 8 == 0)


if gluon is not None:
    @gluon.constexpr_function
    def _acc_layout(BN, BM, num_warps):
        # each warp owns 16 W rows (a warpgroup 64); wgmma's N is the x tile
        return gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[num_warps, 1], instr_shape=[16, BM, 16])

    @gluon.constexpr_function
    def _code_layout(BN, BKB, num_warps):
        """[BN, BKB] code bytes as the A fragment of the dequantized [BN, 2 BKB] tile wants them.

        Registers, fastest first: row + 8, byte + 4, then bytes + 8, + 16, ...; lanes: bytes + 1,
        + 2, rows + 1, + 2, + 4; warps: rows + 16, + 32, ...; so each group of 4 registers (one
        32-bit word for the PRMT block) is rows {g, g + 8} x bytes {t, t + 4}."""
        log2 = int.bit_length
        regs = [[8, 0], [0, 4]] + [[0, 1 << b] for b in range(3, log2(BKB) - 1)]
        lanes = [[0, 1], [0, 2], [1, 0], [2, 0], [4, 0]]
        warps = [[1 << b, 0] for b in range(4, 4 + log2(num_warps) - 1)]
        return gl.DistributedLinearLayout(reg_bases=regs, lane_bases=lanes, warp_bases=warps, block_bases=[],
                                          shape=[BN, BKB])

    @gluon.jit
    def _load_scale_zero(s_ptr, z_ptr, rows, row_ok, k0, K, GROUP, stride_sn, stride_zn, stride_zg,
                         SYM: gl.constexpr):
        """Scale (fp16) and zero-point code (uint8; 8 when symmetric) of each row for the group
        holding input k0 (clamped). The zero point stays a code until `_dequant_fragment` uses it."""
        g = gl.minimum(k0, K - 1) // GROUP
        s = gl.load(s_ptr + rows * stride_sn + g, mask=row_ok, other=0.0)
        if SYM:
            z = gl.full(s.shape, 8, gl.uint8, s.type.layout)
        else:
            z = gl.load(z_ptr + rows * stride_zn + g * stride_zg, mask=row_ok, other=0)
        return s, z

    @gluon.jit
    def _zero_fp16(z):
        """1024 + z as fp16 (z under the exponent of 1024), what the PTX block subtracts."""
        return (z.to(gl.uint16) | 0x6400).to(gl.float16, bitcast=True)

    @gluon.jit
    def _dequant_fragment(c_buf, s, z, a_layout: gl.constexpr, code_layout: gl.constexpr):
        """Code bytes [BN, BKB] in shared memory -> (q - z) * s as wgmma's register A operand."""
        BN: gl.constexpr = c_buf.type.shape[0]
        BKB: gl.constexpr = c_buf.type.shape[1]
        codes = c_buf.load(code_layout)
        # The stage is refilled by TMA (the async proxy) after these generic reads. The proxy fence
        # goes here, where the MEMBAR it compiles to waits only for these loads, needed anyway; left
        # to the compiler it lands after the next step's scale loads and waits for them too.
        fence_async_shared()
        zf = _zero_fp16(z)
        zl = gl.broadcast(gl.expand_dims(zf, 1), codes)[0]
        zh = gl.broadcast(gl.expand_dims(960.0 - zf, 1), codes)[0]  # -(64 + z), exact in fp16
        sb = gl.broadcast(gl.expand_dims(s, 1), codes)[0]
        lo, hi = gl.inline_asm_elementwise(
            asm=INT4_DEQUANT_SCALED, constraints="=r,=r,=r,=r,r,r,r,r,r,r,r",
            args=[codes, zl, zh, sb], dtype=(gl.float16, gl.float16), is_pure=True, pack=4)
        w = gl.reshape(gl.join(lo, hi), [BN, 2 * BKB])
        return gl.convert_layout(w, a_layout, assert_trivial=True)

    @gluon.jit
    def _step(c, i, a, acc, x_bufs, c_bufs, ready, s_ptr, z_ptr, rows, row_ok, K, GROUP, stride_sn, stride_zn,
              stride_zg, s, z, SYM: gl.constexpr, STAGES: gl.constexpr, a_layout: gl.constexpr,
              code_layout: gl.constexpr, LOAD: gl.constexpr):
        """K step i of the tile whose first step is ring position c: dequantize into `a` (registers
        no wgmma in flight reads) and issue its wgmma; with LOAD, load the next step's scales and
        zero points (else the next step is in this one's group)."""
        BK: gl.constexpr = x_bufs.type.shape[2]
        st = (c + i) % STAGES
        mbarrier.wait(ready.index(st), ((c + i) // STAGES) & 1)
        a = _dequant_fragment(c_bufs.index(st), s, z, a_layout, code_layout)
        # issued after this step's fence so that the fence does not wait for them
        if LOAD:
            s, z = _load_scale_zero(s_ptr, z_ptr, rows, row_ok, (i + 1) * BK, K, GROUP, stride_sn, stride_zn,
                                    stride_zg, SYM)
        acc = warpgroup_mma(a, x_bufs.index(st).permute((1, 0)), acc, is_async=True)
        return a, acc, s, z

    @gluon.jit
    def _release(c, i, empty, STAGES: gl.constexpr):
        """After the wait for wgmma i - 1 in every warp: its stage is free (none before step 1)."""
        _cta_barrier()
        mbarrier.arrive(empty.index((c + i + STAGES - 1) % STAGES), count=1, pred=i > 0)

    @gluon.jit
    def _store_tile(acc, y_desc, y_smem, b_ptr, off_m, off_n, N, HAS_BIAS: gl.constexpr):
        """y[off_m:, off_n:] = acc^T (+ bias) through shared memory and a TMA store, which runs on
        while the next tile's steps start (waited for before y_smem is written again)."""
        BN: gl.constexpr = acc.type.shape[0]
        if HAS_BIAS:
            offs_n = off_n + gl.arange(0, BN, layout=gl.SliceLayout(1, acc.type.layout))
            acc += gl.expand_dims(gl.load(b_ptr + offs_n, mask=offs_n < N, other=0.0).to(gl.float32), 1)
        tma.store_wait(0)
        y_smem.store(gl.permute(acc.to(gl.float16), (1, 0)))
        fence_async_shared()
        tma.async_copy_shared_to_global(y_desc, [off_m, off_n], y_smem)

    @gluon.jit
    def _mma_partition(x_bufs, c_bufs, ready, empty, y_desc, s_ptr, z_ptr, b_ptr, M, N, K, GROUP, stride_sn,
                       stride_zn, stride_zg, SYM: gl.constexpr, HAS_BIAS: gl.constexpr, STAGES: gl.constexpr,
                       GROUP_M: gl.constexpr, PAIRED: gl.constexpr, num_warps: gl.constexpr):
        """The program's wgmma warps, tile after tile: the fp32 tile y^T[BN, BM], two K steps a loop
        trip, then its store. PAIRED: a trip's two steps share a scale group, loaded once."""
        BM: gl.constexpr = x_bufs.type.shape[1]
        BK: gl.constexpr = x_bufs.type.shape[2]
        BN: gl.constexpr = c_bufs.type.shape[1]
        BKB: gl.constexpr = c_bufs.type.shape[2]
        acc_layout: gl.constexpr = _acc_layout(BN, BM, num_warps)
        a_layout: gl.constexpr = gl.DotOperandLayout(operand_index=0, parent=acc_layout, k_width=2)
        code_layout: gl.constexpr = _code_layout(BN, BKB, num_warps)
        y_smem = gl.allocate_shared_memory(gl.float16, [BM, BN], y_desc.layout)
        ksteps = K // BK
        a0 = gl.zeros((BN, BK), dtype=gl.float16, layout=a_layout)
        a1 = gl.zeros((BN, BK), dtype=gl.float16, layout=a_layout)
        c = 0  # ring position of the tile's first step (the loader counts the same way)
        for tile in range(gl.program_id(0), gl.cdiv(M, BM) * gl.cdiv(N, BN), gl.num_programs(0)):
            off_m, off_n = _tile_coords(tile, M, N, BM, BN, GROUP_M)
            rows = off_n + gl.arange(0, BN, layout=gl.SliceLayout(1, code_layout))
            row_ok = rows < N
            s, z = _load_scale_zero(s_ptr, z_ptr, rows, row_ok, 0, K, GROUP, stride_sn, stride_zn, stride_zg, SYM)
            acc = gl.zeros((BN, BM), dtype=gl.float32, layout=acc_layout)
            for j in range(ksteps // 2):
                a0, acc, s, z = _step(c, 2 * j, a0, acc, x_bufs, c_bufs, ready, s_ptr, z_ptr, rows, row_ok, K, GROUP,
                                      stride_sn, stride_zn, stride_zg, s, z, SYM, STAGES, a_layout, code_layout,
                                      not PAIRED)
                acc, a0, a1 = warpgroup_mma_wait(num_outstanding=1, deps=(acc, a0, a1))
                _release(c, 2 * j, empty, STAGES)
                a1, acc, s, z = _step(c, 2 * j + 1, a1, acc, x_bufs, c_bufs, ready, s_ptr, z_ptr, rows, row_ok, K,
                                      GROUP, stride_sn, stride_zn, stride_zg, s, z, SYM, STAGES, a_layout,
                                      code_layout, True)
                acc, a0, a1 = warpgroup_mma_wait(num_outstanding=1, deps=(acc, a0, a1))
                _release(c, 2 * j + 1, empty, STAGES)
            if ksteps % 2 == 1:
                a0, acc, s, z = _step(c, ksteps - 1, a0, acc, x_bufs, c_bufs, ready, s_ptr, z_ptr, rows, row_ok, K,
                                      GROUP, stride_sn, stride_zn, stride_zg, s, z, SYM, STAGES, a_layout,
                                      code_layout, True)
                acc, a0, a1 = warpgroup_mma_wait(num_outstanding=1, deps=(acc, a0, a1))
                _release(c, ksteps - 1, empty, STAGES)
            acc, a0, a1 = warpgroup_mma_wait(num_outstanding=0, deps=(acc, a0, a1))
            _release(c, ksteps, empty, STAGES)  # the tile's last stage
            _store_tile(acc, y_desc, y_smem, b_ptr, off_m, off_n, N, HAS_BIAS)
            c += ksteps
        tma.store_wait(0)

    @gluon.jit
    def _tile_coords(tile, M, N, BM: gl.constexpr, BN: gl.constexpr, GROUP_M: gl.constexpr):
        """First x row and first W row of output tile `tile`, in grouped order: GROUP_M x tiles
        share each weight tile while it is in L2."""
        tiles_m = gl.cdiv(M, BM)
        tiles_n = gl.cdiv(N, BN)
        per_group = GROUP_M * tiles_n
        first_m = (tile // per_group) * GROUP_M
        group_rows = gl.minimum(tiles_m - first_m, GROUP_M)
        pid_m = first_m + (tile % per_group) % group_rows
        pid_n = (tile % per_group) // group_rows
        return pid_m * BM, pid_n * BN

    @gluon.jit
    def _load_step(x_desc, c_desc, x_buf, c_buf, bar, step, off_m, off_n, pred):
        """TMA loads of K step `step` (x tile and code tile) into one stage, on its barrier."""
        BK: gl.constexpr = x_desc.block_type.shape[1]
        BKB: gl.constexpr = c_desc.block_type.shape[1]
        mbarrier.expect(bar, x_desc.block_type.nbytes + c_desc.block_type.nbytes, pred=pred)
        tma.async_copy_global_to_shared(x_desc, [off_m, step * BK], bar, x_buf, pred)
        tma.async_copy_global_to_shared(c_desc, [off_n, step * BKB], bar, c_buf, pred)

    @gluon.jit
    def _load_partition(x_desc, c_desc, x_bufs, c_bufs, ready, empty, M, N, K, STAGES: gl.constexpr,
                        GROUP_M: gl.constexpr):
        """One warp: the TMA loads of the program's tiles, a stage as soon as the wgmma warps free
        it, running on into the next tile while they finish and store this one."""
        BM: gl.constexpr = x_desc.block_type.shape[0]
        BN: gl.constexpr = c_desc.block_type.shape[0]
        ksteps = K // x_desc.block_type.shape[1]
        c = 0
        for tile in range(gl.program_id(0), gl.cdiv(M, BM) * gl.cdiv(N, BN), gl.num_programs(0)):
            off_m, off_n = _tile_coords(tile, M, N, BM, BN, GROUP_M)
            for i in range(ksteps):
                st = (c + i) % STAGES
                # a fresh barrier passes the wait for the phase before its first
                mbarrier.wait(empty.index(st), (((c + i) // STAGES) & 1) ^ 1)
                _load_step(x_desc, c_desc, x_bufs.index(st), c_bufs.index(st), ready.index(st), i, off_m, off_n,
                           True)
            c += ksteps

    @gluon.jit
    def _wgmma_int4_kernel(
        x_desc, c_desc, y_desc, s_ptr, z_ptr, b_ptr,
        M, N, K, GROUP, stride_sn, stride_zn, stride_zg,
        SYM: gl.constexpr, HAS_BIAS: gl.constexpr, STAGES: gl.constexpr, GROUP_M: gl.constexpr,
        PAIRED: gl.constexpr, num_warps: gl.constexpr,
    ):
        """Persistent: a program per SM walks the output tiles (tile, tile + programs, ...)."""
        BM: gl.constexpr = x_desc.block_type.shape[0]
        BK: gl.constexpr = x_desc.block_type.shape[1]
        BN: gl.constexpr = c_desc.block_type.shape[0]
        BKB: gl.constexpr = c_desc.block_type.shape[1]
        gl.static_assert(BKB * 2 == BK)
        gl.static_assert(BN == 16 * num_warps)

        x_bufs = gl.allocate_shared_memory(gl.float16, [STAGES, BM, BK], x_desc.layout)
        c_bufs = gl.allocate_shared_memory(gl.uint8, [STAGES, BN, BKB], c_desc.layout)
        ready = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
        empty = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
        for i in gl.static_range(STAGES):
            mbarrier.init(ready.index(i), count=1)
            mbarrier.init(empty.index(i), count=1)

        gl.warp_specialize([
            (_mma_partition, (x_bufs, c_bufs, ready, empty, y_desc, s_ptr, z_ptr, b_ptr, M, N, K, GROUP, stride_sn,
                              stride_zn, stride_zg, SYM, HAS_BIAS, STAGES, GROUP_M, PAIRED, num_warps)),
            (_load_partition, (x_desc, c_desc, x_bufs, c_bufs, ready, empty, M, N, K, STAGES, GROUP_M)),
        ], [1], [24])
        for i in gl.static_range(STAGES):
            mbarrier.invalidate(ready.index(i))
            mbarrier.invalidate(empty.index(i))


NAME = "fused wgmma"
CONFIG = None  # takes no config


def can_run(problem: MatmulProblem, config: None = None) -> tuple[bool, str]:
    """Tuned launches of DEQUANT_MIN_M <= M < FUSED_MAX_M that `supported` takes, where the tiles
    fill the GPU (`pays_off`)."""
    if config is not None:
        return False, "takes no config"
    if gluon is None:
        return False, "Gluon is missing from this Triton"
    if problem.device_type != "cuda" or problem.interpreting:
        return False, "needs a CUDA device (no interpreter for Gluon)"
    if not problem.tuned:
        return False, "an untuned launch"
    if problem.capability != 9:
        return False, f"wgmma needs sm_90, this GPU is sm_{problem.capability}x"
    if not DEQUANT_MIN_M <= problem.m < FUSED_MAX_M:
        return False, f"M = {problem.m} outside [{DEQUANT_MIN_M}, {FUSED_MAX_M})"
    if problem.dtype != torch.float16 or problem.bits != 4:
        return False, "fp16 x and int4 codes only"
    if problem.k % BLOCK[2] or problem.group % BLOCK[2]:
        return False, f"K and the scale group must be multiples of {BLOCK[2]}"
    if not problem.tma_aligned:
        return False, "x, codes or y not addressable by TMA (16-byte rows and bases, N a multiple of 8)"
    if not pays_off(problem.m, problem.n, num_sms()):
        return False, "too few output tiles to fill the GPU: dequantize + cuBLAS is faster"
    return True, ""


def launch(problem: MatmulProblem, ops: Operands, config: None, state: LaunchState) -> None:
    wgmma_int4_matmul(ops.x, ops.codes, ops.scales, ops.zeros, problem.group, ops.bias, ops.y)
    state.last["prefill"] = "wgmma_int4"


def wgmma_int4_matmul(x2: torch.Tensor, codes: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor | None,
                      group: int, bias: torch.Tensor | None, y: torch.Tensor) -> None:
    """y[M, N] = x2[M, K] @ dequant(codes)^T (+ bias) for a problem `supported` takes; codes uint8
    [N, K/2], scales fp16 [N, G], zeros uint8 [N, G] (None: symmetric), y contiguous fp16 [M, N]."""
    m, k = x2.shape
    if zeros is not None:
        zeros = zeros.contiguous()
    n = codes.shape[0]
    bn, bm, bk = BLOCK
    x_layout = gl.NVMMASharedLayout.get_default_for([bm, bk], gl.float16)
    c_layout = gl.NVMMASharedLayout.get_default_for([bn, bk // 2], gl.uint8)
    y_layout = gl.NVMMASharedLayout.get_default_for([bm, bn], gl.float16)
    x_desc = TensorDescriptor.from_tensor(x2, [bm, bk], x_layout)
    c_desc = TensorDescriptor.from_tensor(codes, [bn, bk // 2], c_layout)
    y_desc = TensorDescriptor.from_tensor(y, [bm, bn], y_layout)
    programs = min(tiles(m, n), sm_count(x2.device.index))
    _wgmma_int4_kernel[(programs, )](
        x_desc, c_desc, y_desc, scales, zeros if zeros is not None else codes, bias if bias is not None else scales,
        m, n, k, group, scales.stride(0), zeros.stride(0) if zeros is not None else 0, 1,
        zeros is None, bias is not None, STAGES, 8, group % (2 * bk) == 0, num_warps=bn // 16)
