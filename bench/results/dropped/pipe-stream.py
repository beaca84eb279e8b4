"""Experiment: M = 1 decode as a persistent loop over (row tile, K split) units whose nested K loop
Triton flattens and software-pipelines (cp.async ring across unit boundaries: one ramp a program)."""
import sys
import torch, triton
import triton.language as tl
import kernels  # noqa
W = sys.modules["kernels.wo_matmul"]


@triton.jit(do_not_specialize=["GROUP"])
def _pipe_stream_kernel(
    x_ptr, c_ptr, s_ptr, z_ptr, y_ptr, ws_ptr, lock_ptr,
    N, K, GROUP, stride_cn, stride_sn, stride_zn,
    SPLIT: tl.constexpr, BITS: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, NG: tl.constexpr,
    SYM: tl.constexpr, SUB_IS_GROUP: tl.constexpr, USE_ASM: tl.constexpr, EVICT: tl.constexpr,
    FLATTEN: tl.constexpr, STAGES: tl.constexpr = 3, INNER: tl.constexpr = False,
    WHOLE: tl.constexpr = False,
):
    CPW: tl.constexpr = 32 // BITS
    Q: tl.constexpr = CPW // 4
    SUB: tl.constexpr = BLOCK_K // NG
    WPG: tl.constexpr = SUB // CPW
    dtype: tl.constexpr = x_ptr.dtype.element_ty
    ASM: tl.constexpr = USE_ASM and dtype == tl.float16
    PAIRED: tl.constexpr = SYM and ASM and BITS == 4
    pid = tl.program_id(0)
    nprog = tl.num_programs(0)
    ar_n = tl.arange(0, BLOCK_N)
    offs_g = tl.arange(0, NG)
    word_off = offs_g[:, None] * WPG + tl.arange(0, WPG)[None, :]
    row_words = K // CPW
    kper = (K // BLOCK_K) // SPLIT
    units = tl.cdiv(N, BLOCK_N) * SPLIT
    x_base = x_ptr.to(tl.pointer_type(tl.int64)) + tl.arange(0, Q)[None, None, :]
    for u in tl.range(pid, units, nprog, flatten=FLATTEN, num_stages=None if INNER else STAGES):
        tile = u // SPLIT
        part = u - tile * SPLIT
        offs_n = tile * BLOCK_N + ar_n
        n_mask = offs_n < N
        w_rows = c_ptr.to(tl.pointer_type(tl.int32)) + offs_n[:, None, None] * (stride_cn // 4)
        acc = tl.zeros((BLOCK_N, NG, WPG // 2 if PAIRED else WPG), dtype=tl.float32)
        for i in tl.range(0, kper, num_stages=STAGES if INNER else None):
            k0 = (part * kper + i) * BLOCK_K
            wd, s, zf = W._word_codes(w_rows, s_ptr, z_ptr, offs_n, n_mask, k0, K, GROUP, stride_sn, stride_zn,
                                      row_words, word_off, offs_g, n_mask, BITS, CPW, SUB, True, SYM, SUB_IS_GROUP,
                                      EVICT)
            xp = W._word_x(x_base, n_mask, k0, row_words, word_off, CPW, Q, False, True)
            if PAIRED:
                acc += W._word_dot_pairs(wd, xp, zf, s)
            else:
                acc += W._word_dot(wd, xp, zf, s, BITS, ASM, dtype)
        out = tl.sum(tl.sum(acc, axis=2), axis=1)
        if WHOLE:
            tl.store(y_ptr + offs_n, out.to(y_ptr.dtype.element_ty), mask=n_mask)
        else:
            # split-K finish without a nested loop (the pipeliner skips loops that hold one)
            tl.store(ws_ptr + part * N + offs_n, out, mask=n_mask)
            tl.debug_barrier()
            arrived = tl.atomic_add(lock_ptr + tile, 1, sem="acq_rel", scope="gpu")
            if arrived == SPLIT - 1:
                total = tl.zeros(out.shape, dtype=tl.float32)
                for s_idx in tl.static_range(SPLIT):
                    total += tl.load(ws_ptr + s_idx * N + offs_n, mask=n_mask, other=0.0, cache_modifier=".cg")
                tl.store(y_ptr + offs_n, total.to(y_ptr.dtype.element_ty), mask=n_mask)
                tl.atomic_xchg(lock_ptr + tile, 0, sem="relaxed", scope="gpu")


def pipe_stream(x, qw, bn, bk, warps, ng, stages, split, programs, evict=False, flatten=True):
    """y = x @ dequant(qw)^T for M = 1 with the experimental kernel (explicit config)."""
    n, k = qw.shape
    fmt = qw.format
    group = fmt.effective_group(k)
    assert k % bk == 0 and (k // bk) % split == 0 and group % (bk // ng) == 0
    y = torch.empty(1, n, dtype=x.dtype, device=x.device)
    ws = torch.empty(W.MAX_SPLIT_K * n, dtype=torch.float32, device=x.device)
    locks = W._locks(x.device, n)
    sym = qw.zeros is None
    z = W._sym_zero(x.device, fmt.bits) if sym else qw.zeros.contiguous()
    _pipe_stream_kernel[(programs,)](
        x, qw.codes, qw.scales, z, y, ws, locks, n, k, group, qw.codes.stride(0), qw.scales.stride(0),
        0 if sym else z.stride(0),
        SPLIT=split, BITS=fmt.bits, BLOCK_N=bn, BLOCK_K=bk, NG=ng, SYM=sym, SUB_IS_GROUP=group * ng == bk,
        USE_ASM=not W.interpreting() and x.dtype == torch.float16, EVICT=evict, FLATTEN=flatten, STAGES=stages, WHOLE=split == 1,
        num_warps=warps, num_stages=stages,
    )
    return y
