"""Experiment: M = 1 decode stream with dynamic chunk claiming. The (row tile, part) chunks, PARTS a
tile of C = ksteps / PARTS steps each, are claimed from an atomic counter by persistent programs
(the next one claimed a chunk ahead), so a program that streams faster takes more chunks and all
finish within about one chunk of each other. Chunks are fixed pieces, finished as split-K parts in
a fixed order (deterministic). The last program to exit resets the counters."""
import sys
import torch, triton
import triton.language as tl
import kernels  # noqa
W = sys.modules["kernels.wo_matmul"]


@triton.jit
def _step(c_ptr, s_ptr, z_ptr, x_base, chunk, i, C, PARTS: tl.constexpr, nchunks, N, K, GROUP, stride_cn, stride_sn,
          stride_zn, row_words, word_off, offs_g, ar_n, BITS: tl.constexpr, BLOCK_N: tl.constexpr,
          BLOCK_K: tl.constexpr, CPW: tl.constexpr, Q: tl.constexpr, SUB: tl.constexpr, SYM: tl.constexpr,
          SUB_IS_GROUP: tl.constexpr, EVICT: tl.constexpr):
    tile = chunk // PARTS
    part = chunk - tile * PARTS
    kk = part * C + i
    return W._stream_step(c_ptr, s_ptr, z_ptr, x_base, ar_n < 1, tile, kk, N, K, GROUP, stride_cn, stride_sn, stride_zn,
                          row_words, word_off, offs_g, ar_n, chunk < nchunks, BITS, BLOCK_N, BLOCK_K, CPW, Q, SUB,
                          False, True, SYM, SUB_IS_GROUP, EVICT)


@triton.jit(do_not_specialize=["GROUP"])
def _dyn_kernel(
    x_ptr, c_ptr, s_ptr, z_ptr, y_ptr, ws_ptr, lock_ptr, sched_ptr,
    N, K, GROUP, stride_cn, stride_sn, stride_zn,
    PARTS: tl.constexpr, BITS: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, NG: tl.constexpr,
    SYM: tl.constexpr, SUB_IS_GROUP: tl.constexpr, USE_ASM: tl.constexpr, EVICT: tl.constexpr,
):
    CPW: tl.constexpr = 32 // BITS
    Q: tl.constexpr = CPW // 4
    SUB: tl.constexpr = BLOCK_K // NG
    WPG: tl.constexpr = SUB // CPW
    dtype: tl.constexpr = x_ptr.dtype.element_ty
    ASM: tl.constexpr = USE_ASM and dtype == tl.float16
    PAIRED: tl.constexpr = SYM and ASM and BITS == 4
    ar_n = tl.arange(0, BLOCK_N)
    offs_g = tl.arange(0, NG)
    word_off = offs_g[:, None] * WPG + tl.arange(0, WPG)[None, :]
    row_words = K // CPW
    C = (K // BLOCK_K) // PARTS
    nchunks = tl.cdiv(N, BLOCK_N) * PARTS
    x_base = x_ptr.to(tl.pointer_type(tl.int64)) + tl.arange(0, Q)[None, None, :]
    acc = tl.zeros((BLOCK_N, NG, WPG // 2 if PAIRED else WPG), dtype=tl.float32)
    # The first chunk of each program is its id; later ones are claimed. Every program makes one
    # claim at the start and one after each chunk, so a launch makes nchunks + nprog claims in all
    # (each chunk from nprog on once, two past the end per program): the one that draws the last
    # value resets the counter for the next launch, with no other claim left to come.
    nprog = tl.num_programs(0)
    chunk = tl.program_id(0)
    claim = tl.atomic_add(sched_ptr, 1, sem="relaxed", scope="gpu")
    nxt = nprog + claim
    wd, s, zf, xp = _step(c_ptr, s_ptr, z_ptr, x_base, chunk, 0, C, PARTS, nchunks, N, K, GROUP, stride_cn, stride_sn,
                          stride_zn, row_words, word_off, offs_g, ar_n, BITS, BLOCK_N, BLOCK_K, CPW, Q, SUB, SYM,
                          SUB_IS_GROUP, EVICT)
    while chunk < nchunks:
        for i in range(C):
            last = i == C - 1
            p_chunk = tl.where(last, nxt, chunk)
            p_i = tl.where(last, 0, i + 1)
            wd2, s2, zf2, xp2 = _step(c_ptr, s_ptr, z_ptr, x_base, p_chunk, p_i, C, PARTS, nchunks, N, K, GROUP,
                                      stride_cn, stride_sn, stride_zn, row_words, word_off, offs_g, ar_n, BITS,
                                      BLOCK_N, BLOCK_K, CPW, Q, SUB, SYM, SUB_IS_GROUP, EVICT)
            if PAIRED:
                acc += W._word_dot_pairs(wd, xp, zf, s)
            else:
                acc += W._word_dot(wd, xp, zf, s, BITS, ASM, dtype)
            wd, s, zf, xp = wd2, s2, zf2, xp2
        tile = chunk // PARTS
        part = chunk - tile * PARTS
        offs_n = tile * BLOCK_N + ar_n
        n_mask = offs_n < N
        out = tl.sum(tl.sum(acc, axis=2), axis=1)
        W._splitk_finish(out, y_ptr + offs_n, ws_ptr + offs_n, n_mask, y_ptr, offs_n, n_mask, lock_ptr, tile, part,
                         1, N, PARTS, False)
        acc = tl.zeros(acc.shape, dtype=tl.float32)
        chunk = nxt
        claim = tl.atomic_add(sched_ptr, 1, sem="relaxed", scope="gpu")
        nxt = nprog + claim
    if claim == nchunks + nprog - 1:
        tl.atomic_xchg(sched_ptr, 0, sem="relaxed", scope="gpu")


_SCHED = {}


def dyn(x, qw, bn, bk, warps, ng, parts, programs, evict=False):
    n, k = qw.shape
    fmt = qw.format
    group = fmt.effective_group(k)
    assert k % bk == 0 and (k // bk) % parts == 0 and group % (bk // ng) == 0 and parts <= W.MAX_SPLIT_K
    y = torch.empty(1, n, dtype=x.dtype, device=x.device)
    ws = torch.empty(W.MAX_SPLIT_K * n, dtype=torch.float32, device=x.device)
    locks = W._locks(x.device, n)
    sched = _SCHED.get(x.device)
    if sched is None:
        sched = _SCHED[x.device] = torch.zeros(1, dtype=torch.int32, device=x.device)
    sym = qw.zeros is None
    z = W._sym_zero(x.device, fmt.bits) if sym else qw.zeros.contiguous()
    programs = min(programs, triton.cdiv(n, bn) * parts)
    _dyn_kernel[(programs,)](
        x, qw.codes, qw.scales, z, y, ws, locks, sched, n, k, group, qw.codes.stride(0), qw.scales.stride(0),
        0 if sym else z.stride(0),
        PARTS=parts, BITS=fmt.bits, BLOCK_N=bn, BLOCK_K=bk, NG=ng, SYM=sym, SUB_IS_GROUP=group * ng == bk,
        USE_ASM=not W.interpreting() and x.dtype == torch.float16, EVICT=evict, num_warps=warps, num_stages=1,
    )
    return y
