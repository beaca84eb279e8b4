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

Only the stored layout the quantizers write is read (codes [N, K/2] bytes, scales [N, G], zero
points [N, G] bytes); no repacking. The tile (128 W rows x 256 x rows x 64) and the stage count
come from the sweeps in bench/results/kernel-variants-h100-wgmma-rega-{1,2,3}.json. There is no
interpreter for Gluon: the CPU tests cover the dispatch rule, the GPU tests the numbers.
"""

from __future__ import annotations

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
FUSED_MAX_M = 2048  # from here on dequantize + cuBLAS is as fast or faster (`pays_off`)


def tiles(m: int, n: int) -> int:
    """Programs the kernel launches for an [m, n] output."""
    return triton.cdiv(m, BLOCK[1]) * triton.cdiv(n, BLOCK[0])


def pays_off(m: int, n: int, sms: int) -> bool:
    """Whether this kernel beats dequantize + cuBLAS here (bench/results/prefill-paths-h100.json,
    int4-g128 over the 10 benchmark layers at M = 512, 1024, 2048 on the H100):
    * tiles for at least 3/4 of the SMs: with 16-64 tiles (k/v projections, and N = 4096 at
      M = 512) it ran at 0.21-0.58x cuBLAS against 0.64-0.90x, with 128 or more at 0.78-1.02x
      against 0.61-0.85x;
    * M below FUSED_MAX_M: at M = 2048 the two paths are even for symmetric formats (medians
      0.883x and 0.878x) and dequantize + cuBLAS wins for asymmetric ones (0.863x against 0.819x);
      the dequantize pass costs the same at any M, the fused kernel a share of the GEMM."""
    return m < FUSED_MAX_M and 4 * tiles(m, n) >= 3 * sms


def supported(x2: torch.Tensor, codes: torch.Tensor, scales: torch.Tensor, bits: int, group: int, k: int) -> bool:
    """Whether the kernel takes this problem: Gluon present, an sm_90 GPU (wgmma), fp16 x and
    scales, int4 codes, K a whole number of steps and scale groups of whole steps, and tensors TMA
    can address (16-byte aligned rows and bases)."""
    return (gluon is not None and x2.is_cuda and torch.cuda.get_device_capability(x2.device)[0] == 9
            and x2.dtype == torch.float16 and scales.dtype == torch.float16 and bits == 4
            and k % BLOCK[2] == 0 and group % BLOCK[2] == 0
            and x2.stride(-1) == 1 and (x2.stride(0) * 2) % 16 == 0 and x2.data_ptr() % 16 == 0
            and codes.is_contiguous() and codes.data_ptr() % 16 == 0)


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
    def _scale_zero(s_ptr, z_ptr, rows, row_ok, k0, K, GROUP, stride_sn, stride_zn, stride_zg, SYM: gl.constexpr):
        """Scale and 1024 + zero-point (fp16) of each row for the group holding input k0 (clamped)."""
        g = gl.minimum(k0, K - 1) // GROUP
        s = gl.load(s_ptr + rows * stride_sn + g, mask=row_ok, other=0.0)
        if SYM:
            zf = gl.full(s.shape, 1032.0, gl.float16, s.type.layout)
        else:
            z = gl.load(z_ptr + rows * stride_zn + g * stride_zg, mask=row_ok, other=0)
            zf = (z.to(gl.uint16) | 0x6400).to(gl.float16, bitcast=True)
        return s, zf

    @gluon.jit
    def _dequant_fragment(c_buf, s, zf, a_layout: gl.constexpr, code_layout: gl.constexpr):
        """Code bytes [BN, BKB] in shared memory -> (q - z) * s as wgmma's register A operand."""
        BN: gl.constexpr = c_buf.type.shape[0]
        BKB: gl.constexpr = c_buf.type.shape[1]
        codes = c_buf.load(code_layout)
        # The stage is refilled by TMA (the async proxy) after these generic reads. The proxy fence
        # goes here, where the MEMBAR it compiles to waits only for these loads, needed anyway; left
        # to the compiler it lands after the next step's scale loads and waits for them too.
        fence_async_shared()
        zl = gl.broadcast(gl.expand_dims(zf, 1), codes)[0]
        zh = gl.broadcast(gl.expand_dims(960.0 - zf, 1), codes)[0]  # -(64 + z), exact in fp16
        sb = gl.broadcast(gl.expand_dims(s, 1), codes)[0]
        lo, hi = gl.inline_asm_elementwise(
            asm=_INT4_DEQUANT_ASM, constraints="=r,=r,=r,=r,r,r,r,r,r,r,r",
            args=[codes, zl, zh, sb], dtype=(gl.float16, gl.float16), is_pure=True, pack=4)
        w = gl.reshape(gl.join(lo, hi), [BN, 2 * BKB])
        return gl.convert_layout(w, a_layout, assert_trivial=True)

    @gluon.jit
    def _step(i, a, acc, x_bufs, c_bufs, ready, s_ptr, z_ptr, rows, row_ok, K, GROUP, stride_sn, stride_zn,
              stride_zg, s, zf, SYM: gl.constexpr, STAGES: gl.constexpr, a_layout: gl.constexpr,
              code_layout: gl.constexpr):
        """K step i: dequantize into `a` (registers no wgmma in flight reads), issue wgmma i, wait
        for wgmma i - 1 (every warp's), and hand its stage back to the loader warp."""
        BK: gl.constexpr = x_bufs.type.shape[2]
        st = i % STAGES
        mbarrier.wait(ready.index(st), (i // STAGES) & 1)
        a = _dequant_fragment(c_bufs.index(st), s, zf, a_layout, code_layout)
        # the next step's scales, issued after this step's fence so that the fence does not wait for them
        s1, zf1 = _scale_zero(s_ptr, z_ptr, rows, row_ok, (i + 1) * BK, K, GROUP, stride_sn, stride_zn, stride_zg,
                              SYM)
        acc = warpgroup_mma(a, x_bufs.index(st).permute((1, 0)), acc, is_async=True)
        return a, acc, s1, zf1

    @gluon.jit
    def _release(i, empty, STAGES: gl.constexpr):
        """After the wait for wgmma i - 1 in every warp: its stage is free (none before step 1)."""
        gl.thread_barrier()
        mbarrier.arrive(empty.index((i + STAGES - 1) % STAGES), count=1, pred=i > 0)

    @gluon.jit
    def _mma_partition(x_bufs, c_bufs, ready, empty, s_ptr, z_ptr, off_n, N, K, GROUP, stride_sn, stride_zn,
                       stride_zg, SYM: gl.constexpr, STAGES: gl.constexpr, num_warps: gl.constexpr):
        """The program's warps: the fp32 tile y^T[BN, BM], two K steps a loop trip."""
        BM: gl.constexpr = x_bufs.type.shape[1]
        BK: gl.constexpr = x_bufs.type.shape[2]
        BN: gl.constexpr = c_bufs.type.shape[1]
        BKB: gl.constexpr = c_bufs.type.shape[2]
        acc_layout: gl.constexpr = _acc_layout(BN, BM, num_warps)
        a_layout: gl.constexpr = gl.DotOperandLayout(operand_index=0, parent=acc_layout, k_width=2)
        code_layout: gl.constexpr = _code_layout(BN, BKB, num_warps)
        rows = off_n + gl.arange(0, BN, layout=gl.SliceLayout(1, code_layout))
        row_ok = rows < N
        ksteps = K // BK

        s, zf = _scale_zero(s_ptr, z_ptr, rows, row_ok, 0, K, GROUP, stride_sn, stride_zn, stride_zg, SYM)
        acc = gl.zeros((BN, BM), dtype=gl.float32, layout=acc_layout)
        a0 = gl.zeros((BN, BK), dtype=gl.float16, layout=a_layout)
        a1 = gl.zeros((BN, BK), dtype=gl.float16, layout=a_layout)
        for j in range(ksteps // 2):
            a0, acc, s, zf = _step(2 * j, a0, acc, x_bufs, c_bufs, ready, s_ptr, z_ptr, rows, row_ok, K,
                                   GROUP, stride_sn, stride_zn, stride_zg, s, zf, SYM, STAGES, a_layout, code_layout)
            acc, a0, a1 = warpgroup_mma_wait(num_outstanding=1, deps=(acc, a0, a1))
            _release(2 * j, empty, STAGES)
            a1, acc, s, zf = _step(2 * j + 1, a1, acc, x_bufs, c_bufs, ready, s_ptr, z_ptr, rows, row_ok, K,
                                   GROUP, stride_sn, stride_zn, stride_zg, s, zf, SYM, STAGES, a_layout, code_layout)
            acc, a0, a1 = warpgroup_mma_wait(num_outstanding=1, deps=(acc, a0, a1))
            _release(2 * j + 1, empty, STAGES)
        if ksteps % 2 == 1:
            a0, acc, s, zf = _step(ksteps - 1, a0, acc, x_bufs, c_bufs, ready, s_ptr, z_ptr, rows, row_ok, K,
                                   GROUP, stride_sn, stride_zn, stride_zg, s, zf, SYM, STAGES, a_layout, code_layout)
            acc, a0, a1 = warpgroup_mma_wait(num_outstanding=1, deps=(acc, a0, a1))
        acc, a0, a1 = warpgroup_mma_wait(num_outstanding=0, deps=(acc, a0, a1))
        return (acc, )

    @gluon.jit
    def _tile_offsets(M, N, BM: gl.constexpr, BN: gl.constexpr, GROUP_M: gl.constexpr):
        """First x row and first W row of this program's tile, in grouped order: GROUP_M x tiles
        share each weight tile while it is in L2."""
        pid = gl.program_id(0)
        tiles_m = gl.cdiv(M, BM)
        tiles_n = gl.cdiv(N, BN)
        per_group = GROUP_M * tiles_n
        first_m = (pid // per_group) * GROUP_M
        group_rows = gl.minimum(tiles_m - first_m, GROUP_M)
        pid_m = first_m + (pid % per_group) % group_rows
        pid_n = (pid % per_group) // group_rows
        return pid_m * BM, pid_n * BN

    @gluon.jit
    def _issue_loads(x_desc, c_desc, x_bufs, c_bufs, bars, step, off_m, off_n, pred, STAGES: gl.constexpr):
        """TMA loads of K step `step` (x tile and code tile) into its stage, on the stage's barrier."""
        BK: gl.constexpr = x_desc.block_type.shape[1]
        BKB: gl.constexpr = c_desc.block_type.shape[1]
        st = step % STAGES
        bar = bars.index(st)
        mbarrier.expect(bar, x_desc.block_type.nbytes + c_desc.block_type.nbytes, pred=pred)
        tma.async_copy_global_to_shared(x_desc, [off_m, step * BK], bar, x_bufs.index(st), pred)
        tma.async_copy_global_to_shared(c_desc, [off_n, step * BKB], bar, c_bufs.index(st), pred)

    @gluon.jit
    def _load_partition(x_desc, c_desc, x_bufs, c_bufs, ready, empty, off_m, off_n, K, STAGES: gl.constexpr):
        """One warp: the TMA loads of x and code tiles, a stage as soon as the wgmma warps free it."""
        for i in range(K // x_desc.block_type.shape[1]):
            # a fresh barrier passes the wait for the phase before its first
            mbarrier.wait(empty.index(i % STAGES), ((i // STAGES) & 1) ^ 1)
            _issue_loads(x_desc, c_desc, x_bufs, c_bufs, ready, i, off_m, off_n, True, STAGES)

    @gluon.jit
    def _wgmma_int4_kernel(
        x_desc, c_desc, s_ptr, z_ptr, b_ptr, y_ptr,
        M, N, K, GROUP, stride_sn, stride_zn, stride_zg, stride_ym,
        SYM: gl.constexpr, HAS_BIAS: gl.constexpr, STAGES: gl.constexpr, GROUP_M: gl.constexpr,
        num_warps: gl.constexpr,
    ):
        BM: gl.constexpr = x_desc.block_type.shape[0]
        BK: gl.constexpr = x_desc.block_type.shape[1]
        BN: gl.constexpr = c_desc.block_type.shape[0]
        BKB: gl.constexpr = c_desc.block_type.shape[1]
        gl.static_assert(BKB * 2 == BK)
        gl.static_assert(BN == 16 * num_warps)

        off_m, off_n = _tile_offsets(M, N, BM, BN, GROUP_M)

        x_bufs = gl.allocate_shared_memory(gl.float16, [STAGES, BM, BK], x_desc.layout)
        c_bufs = gl.allocate_shared_memory(gl.uint8, [STAGES, BN, BKB], c_desc.layout)
        ready = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
        empty = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
        for i in gl.static_range(STAGES):
            mbarrier.init(ready.index(i), count=1)
            mbarrier.init(empty.index(i), count=1)

        acc, = gl.warp_specialize([
            (_mma_partition, (x_bufs, c_bufs, ready, empty, s_ptr, z_ptr, off_n, N, K, GROUP, stride_sn, stride_zn,
                              stride_zg, SYM, STAGES, num_warps)),
            (_load_partition, (x_desc, c_desc, x_bufs, c_bufs, ready, empty, off_m, off_n, K, STAGES)),
        ], [1], [24])
        for i in gl.static_range(STAGES):
            mbarrier.invalidate(ready.index(i))
            mbarrier.invalidate(empty.index(i))

        # acc is y^T; stored with n fastest across a warp's lanes (8 outputs a thread, 128-byte
        # rows of y): from the accumulator's own layout each store would write 2 bytes.
        out_layout: gl.constexpr = gl.BlockedLayout([8, 1], [8, 4], [1, num_warps], [0, 1])
        out = gl.convert_layout(acc, out_layout)
        offs_n = off_n + gl.arange(0, BN, layout=gl.SliceLayout(1, out_layout))
        offs_m = off_m + gl.arange(0, BM, layout=gl.SliceLayout(0, out_layout))
        n_ok = offs_n < N
        if HAS_BIAS:
            out += gl.expand_dims(gl.load(b_ptr + offs_n, mask=n_ok, other=0.0).to(gl.float32), 1)
        y_ptrs = y_ptr + gl.expand_dims(offs_m, 0) * stride_ym + gl.expand_dims(offs_n, 1)
        gl.store(y_ptrs, out.to(gl.float16), mask=gl.expand_dims(n_ok, 1) & gl.expand_dims(offs_m < M, 0))


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
    x_desc = TensorDescriptor.from_tensor(x2, [bm, bk], x_layout)
    c_desc = TensorDescriptor.from_tensor(codes, [bn, bk // 2], c_layout)
    _wgmma_int4_kernel[(tiles(m, n), )](
        x_desc, c_desc, scales, zeros if zeros is not None else codes, bias if bias is not None else scales, y,
        m, n, k, group, scales.stride(0), zeros.stride(0) if zeros is not None else 0, 1, y.stride(0),
        zeros is None, bias is not None, STAGES, 8, num_warps=bn // 16)
