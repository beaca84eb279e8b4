"""Fused int4 dequantize + wgmma GEMM for prefill on Hopper (sm_90), written in Gluon.

y = x @ dequant(W)^T is computed transposed, y^T[BN, BM] = W[BN, BK] . x^T[BK, BM], so that W is
wgmma's A operand, which may live in registers: each warp dequantizes its own 16 W rows from the
code bytes straight into the A fragment, and only x (TMA) and the codes (TMA) pass through shared
memory. No dequantized W tile is stored, so there is no generic-to-async proxy fence behind a
store and no barrier between the dequantize and the wgmma (bench/README.md, "Fused dequantize +
wgmma with W as the register operand"; storing the tile was what held the earlier fused kernels
at 0.75x cuBLAS).

* The code bytes are read from shared memory in the fragment's own order: thread (g, t) of a warp
  holds rows g and g + 8 and, of every 8 code bytes (16 inputs), bytes t and t + 4, whose nibbles
  are exactly inputs 2t, 2t + 1, 2t + 8, 2t + 9 of the A fragment. The dequantized tile's layout
  is then the fragment's, and the conversion is free (asserted when the kernel compiles).
* Two A fragments alternate (the loop body does two K steps) so that the dequantize of step i + 1
  writes registers that no wgmma in flight reads; ptxas would otherwise serialize the wgmmas.
* One extra warp issues the TMA loads into a ring of stages as the wgmma warps free them
  (mbarriers both ways), which keeps the loads' barriers out of the wgmma warps' loop.
* Persistent: one program an SM walks the output tiles. The loader runs on into the next tile
  while the wgmma warps store this one, through shared memory and a TMA store that is only
  waited for before the next tile's store. Against one program a tile: medians at M = 2048
  0.89x -> 0.94x cuBLAS (sym), 0.83x -> 0.87x (asym) (bench/README.md).
* Scales and zero points are loaded once a scale group (two K steps when the group is a multiple
  of 128), and a zero point stays a code until the step that uses it converts it. Together these
  gained asymmetric formats 1-5% (geometric means over the layers, M = 512-4096); the late
  conversion alone did not help.

Only the stored layout the quantizers write is read (codes [N, K/2] bytes, scales [N, G], zero
points [N, G] bytes); no repacking. The tile (128 W rows x 256 x rows x 64) and the stage count
come from the sweeps in bench/results/kernel-variants-h100-wgmma-rega-{1,2,3}.json (one program a
tile; the persistent grid left them as they were: 213 KB of shared memory with the y tile). There is no
interpreter for Gluon: the CPU tests cover the dispatch rule, the GPU tests the numbers.
"""

from __future__ import annotations

import functools

import torch
import triton

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
except ImportError:  # pragma: no cover - depends on the Triton install
    gluon = None

BLOCK = (128, 256, 64)  # W rows (16 a wgmma warp), x rows (wgmma's N), K a step
STAGES = 4
FUSED_MAX_M = 4096  # from here on dequantize + cuBLAS is as fast or faster (`pays_off`)


def tiles(m: int, n: int) -> int:
    """Output tiles of an [m, n] problem (the persistent grid runs min(tiles, SMs) programs)."""
    return triton.cdiv(m, BLOCK[1]) * triton.cdiv(n, BLOCK[0])


def pays_off(m: int, n: int, sms: int) -> bool:
    """Whether this kernel beats dequantize + cuBLAS here (bench/results/prefill-paths-h100.json,
    int4-g128 sym and asym over the 10 benchmark layers at M = 512 ... 8192 on the H100):
    * tiles for at least 3/4 of the SMs: at M = 512-2048 the 16 cases with 16-64 tiles (k/v
      projections, N = 4096 at M = 512) ran at 0.22-0.58x cuBLAS against 0.61-0.89x, the 44 with
      128 or more at 0.81-1.06x (median 0.92x) against 0.56-0.92x (0.76x);
    * M below FUSED_MAX_M: at M = 2048 it won 15 of those 16 cases (medians 0.95x / 0.92x sym /
      asym against 0.88x / 0.86x), at M = 4096 8 of 20 (0.94x / 0.89x against 0.95x / 0.92x), at
      8192 4 of 20: the dequantize pass costs the same at any M, the fused dequantize a share of
      the GEMM."""
    return m < FUSED_MAX_M and 4 * tiles(m, n) >= 3 * sms


@functools.cache
def sm_count(device: int | None) -> int:
    """Streaming multiprocessors of a CUDA device (index; None: the current one)."""
    return torch.cuda.get_device_properties(device).multi_processor_count


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
    # (q - z) * s for 4 code bytes at once: PRMT spreads two bytes into the halves of a word; the
    # low nibble is LOP3'd under the exponent of 1024 (1024 + q) and one HSUB2 takes 1024 + z off;
    # the high nibble is masked in place (1024 + 16 q) and one HFMA2 (x 1/16, - (64 + z)) both
    # shifts and subtracts; one HMUL2 applies the scale. Outputs: low nibbles of the four bytes,
    # then high nibbles. (The same arithmetic as wo_matmul's `_codes_to_fp16`.)
    _INT4_DEQUANT_ASM = gl.constexpr("""{
    .reg .b32 t0, t1, u0, u1, v0, v1, r16;
    mov.b32 r16, 0x2C002C00;
    prmt.b32 t0, $4, 0, 0x4140;
    prmt.b32 t1, $4, 0, 0x4342;
    lop3.b32 u0, t0, 0x000F000F, 0x64006400, 0xEA;
    lop3.b32 u1, t1, 0x000F000F, 0x64006400, 0xEA;
    lop3.b32 v0, t0, 0x00F000F0, 0x64006400, 0xEA;
    lop3.b32 v1, t1, 0x00F000F0, 0x64006400, 0xEA;
    sub.f16x2 u0, u0, $5;
    sub.f16x2 u1, u1, $6;
    fma.rn.f16x2 v0, v0, r16, $7;
    fma.rn.f16x2 v1, v1, r16, $8;
    mul.f16x2 $0, u0, $9;
    mul.f16x2 $1, u1, $10;
    mul.f16x2 $2, v0, $9;
    mul.f16x2 $3, v1, $10;
    }""")

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
            asm=_INT4_DEQUANT_ASM, constraints="=r,=r,=r,=r,r,r,r,r,r,r,r",
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
        gl.thread_barrier()
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
