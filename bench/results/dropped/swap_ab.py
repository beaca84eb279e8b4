# Dropped (this session): results/kernel-variants-h100-swap-ab.json, run by swap-ab-run.py from the
# repository root. Median over the 10 layers, int4-g128: M = 2048 0.65x / 0.63x fp16 (best of seven
# tiles; dequantize + cuBLAS 0.89x / 0.87x in the same call), M = 256 0.36x / 0.35x (0.52x / 0.50x).
"""Experiment: large-M kernel with W as the A operand (dequantized in registers, wgmma A from
registers) and x^T as B (shared memory), so the dequantized tile never goes through smem."""
import sys
import triton, triton.language as tl, torch
import kernels  # noqa
W = sys.modules["kernels.wo_matmul"]


@triton.jit(do_not_specialize=["GROUP", "stride_zn", "stride_zg"])
def swap_kernel(x_ptr, c_ptr, s_ptr, z_ptr, y_ptr, M, N, K, GROUP,
                stride_xm, stride_cn, stride_sn, stride_zn, stride_zg, stride_ym,
                BITS: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                USE_ASM: tl.constexpr, SYM: tl.constexpr, GROUP_N: tl.constexpr, MODE: tl.constexpr):
    PACK: tl.constexpr = 8 // BITS
    BKB: tl.constexpr = BLOCK_K // PACK
    dtype = x_ptr.dtype.element_ty
    pid = tl.program_id(0)
    tiles_m = tl.cdiv(M, BLOCK_M)
    tiles_n = tl.cdiv(N, BLOCK_N)
    # GROUP_N weight tiles x every token tile: each weight tile read from DRAM once, x from L2
    per_group = GROUP_N * tiles_m
    first_n = (pid // per_group) * GROUP_N
    group_n = tl.minimum(tiles_n - first_n, GROUP_N)
    pid_n = first_n + (pid % per_group) % group_n
    pid_m = (pid % per_group) // group_n
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    m_mask = offs_m < M
    n_mask = offs_n < N
    offs_b = tl.arange(0, BKB)
    offs_k = tl.arange(0, BLOCK_K)
    c_rows = c_ptr + offs_n[:, None] * stride_cn
    x_cols = x_ptr + offs_m[None, :] * stride_xm
    acc = tl.zeros((BLOCK_N, BLOCK_M), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        s, zf = W._scale_zero(s_ptr, z_ptr, offs_n, n_mask, k0, K, GROUP, stride_sn, stride_zn, stride_zg, SYM, BITS)
        byt = tl.load(c_rows + (k0 // PACK + offs_b)[None, :], mask=n_mask[:, None], other=0)
        xt = tl.load(x_cols + (k0 + offs_k)[:, None], mask=m_mask[None, :], other=0.0)
        if MODE == 0:
            w = W._dequant_tile(byt, s, zf, BITS, BLOCK_N, BLOCK_K, USE_ASM, dtype)
        else:
            q_lo, q_hi = W._codes_minus_zero(byt, zf, BITS, USE_ASM)
            sc = s[:, None]
            w = tl.reshape(tl.join(q_lo * sc, q_hi * sc), (BLOCK_N, BLOCK_K)).to(dtype)
        acc = tl.dot(w, xt, acc)
    y_ptrs = y_ptr + offs_m[None, :] * stride_ym + offs_n[:, None]
    tl.store(y_ptrs, acc.to(dtype), mask=m_mask[None, :] & n_mask[:, None])


def swap_matmul(x, qw, bm=128, bn=128, bk=64, warps=4, stages=4, group_n=8, mode=1):
    n, k = qw.shape
    fmt = qw.format
    group = fmt.effective_group(k)
    m = x.shape[0]
    y = torch.empty((m, n), dtype=x.dtype, device=x.device)
    z = qw.zeros if qw.zeros is not None else qw.scales
    sym = qw.zeros is None
    szn, szg = (z.stride(0), z.stride(1)) if not sym else (0, 0)
    grid = (triton.cdiv(m, bm) * triton.cdiv(n, bn),)
    swap_kernel[grid](x, qw.codes, qw.scales, z, y, m, n, k, group, x.stride(0), qw.codes.stride(0),
                      qw.scales.stride(0), szn, szg, y.stride(0), BITS=fmt.bits, BLOCK_M=bm, BLOCK_N=bn,
                      BLOCK_K=bk, USE_ASM=not W.interpreting(), SYM=sym, GROUP_N=group_n, MODE=mode,
                      num_warps=warps, num_stages=stages)
    return y
