# The dequantize pass's tiling sweep (this session): dequant-tiles-run.py from the repository root,
# results/kernel-variants-h100-dequant-order.json. The winner, 64 x 128 tiles with consecutive
# programs along K (0.88 of copy bandwidth, against 0.75 for the same tiles down N), is now
# kernels/wo_matmul.py's _dequant_kernel; the other tilings were slower.
"""Experiment: dequantize-pass tilings (rows a program, groups a program, program order)."""
import sys
import triton, triton.language as tl, torch
import kernels  # noqa
W = sys.modules["kernels.wo_matmul"]


@triton.jit(do_not_specialize=["GROUP", "stride_zn", "stride_zg"])
def dq_kernel(c_ptr, s_ptr, z_ptr, w_ptr, N, K, GROUP, stride_cn, stride_sn, stride_zn, stride_zg, stride_wn,
              BITS: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, NSUB: tl.constexpr,
              USE_ASM: tl.constexpr, K_FAST: tl.constexpr):
    PACK: tl.constexpr = 8 // BITS
    BKB: tl.constexpr = BLOCK_K // PACK
    dtype = w_ptr.dtype.element_ty
    if K_FAST:
        pid_k = tl.program_id(0)
        pid_n = tl.program_id(1)
    else:
        pid_n = tl.program_id(0)
        pid_k = tl.program_id(1)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_b = tl.arange(0, BKB)
    n_mask = offs_n < N
    row_bytes = (K + PACK - 1) // PACK
    for j in tl.static_range(NSUB):
        k0 = (pid_k * NSUB + j) * BLOCK_K
        if k0 < K:
            kb = k0 // PACK + offs_b
            byt = W._load_codes(c_ptr + offs_n[:, None] * stride_cn, kb, n_mask, row_bytes, False)
            s, zf = W._scale_zero(s_ptr, z_ptr, offs_n, n_mask, k0, K, GROUP, stride_sn, stride_zn, stride_zg)
            w = W._dequant_tile(byt, s, zf, BITS, BLOCK_N, BLOCK_K, USE_ASM, dtype)
            offs_k = k0 + tl.arange(0, BLOCK_K)
            tl.store(w_ptr + offs_n[:, None] * stride_wn + offs_k[None, :], w,
                     mask=n_mask[:, None] & (offs_k[None, :] < K))


def dequant_into(qw, w, bn=64, bk=128, nsub=1, warps=4, k_fast=False):
    n, k = qw.shape
    fmt = qw.format
    group = fmt.effective_group(k)
    z = qw.zeros if qw.zeros is not None else W._sym_zero(qw.codes.device, fmt.bits)
    szn, szg = (z.stride(0), z.stride(1)) if qw.zeros is not None else (0, 0)
    kb = triton.cdiv(k, bk * nsub)
    grid = (kb, triton.cdiv(n, bn)) if k_fast else (triton.cdiv(n, bn), kb)
    dq_kernel[grid](qw.codes, qw.scales, z, w, n, k, group, qw.codes.stride(0), qw.scales.stride(0), szn, szg,
                    w.stride(0), BITS=fmt.bits, BLOCK_N=bn, BLOCK_K=bk, NSUB=nsub, USE_ASM=not W.interpreting(),
                    K_FAST=k_fast, num_warps=warps)
    return w
