"""Decode path for 1-2 tokens: the "word" kernel, a persistent stream on CUDA cores.

The (row tile, K step) pairs of the layer are flattened and every program takes an equal
contiguous share (stream-K), so all SMs stream until the end whatever the layer's shape; a tile
split between programs is summed by the last of them to arrive (one launch, deterministic, no
memset). On short rows the tuner may instead give each program whole row tiles, so that none is
split. Codes are read as 32-bit words, each word through one packed-PTX block (unpack,
dequantize, multiply-add in half2, one fp32 out; `decode_words`); with two token rows a word is
unpacked once for both. In CUDA graph capture on sm_90+ it may launch with programmatic
dependent launch (PDL), so back-to-back calls overlap; whether a tuned launch does is timed at
its eager launch (`graph_pick`) and kept in the `LaunchState`.

Needs K a multiple of the codes per word, 4-byte aligned code rows and 8-byte aligned x rows
(`MatmulProblem.words_aligned`); `decode_bytes` takes the other M = 1 problems.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from autoquant.kernels.decode_words import _word_dot, _word_dot_pairs, _word_dot_rows
from autoquant.kernels.launch_state import LaunchState, graph_pick_key, launch_sig
from autoquant.kernels.problem import (
    MAX_SPLIT_K, MatmulProblem, Operands, autotuned, block_k_fits, even_k, fits_groups, m_bucket, num_sms,
    prune_configs, use_asm,
)
from autoquant.kernels.tile_ops import _code_to_fp16, _splitk_finish, _sym_zero_term

NAME = "decode stream"
# 2 <= M <= this, int4: this path with M rows (one unpack a word for all rows); otherwise the
# small-M tl.dot path. Rows lose to tensor cores from M = 4, and for int8 (FMA-bound) at any M.
ROWS_MAX_M = 2


@dataclass(frozen=True)
class StreamConfig:
    """An explicit launch of the decode stream (tests, benchmarks of one config)."""

    block_n: int  # rows of W a step
    block_k: int  # inputs a step
    num_warps: int = 4
    stages: int = 1  # steps prefetched into registers: 1 or 2
    groups_per_step: int = 1  # sub-blocks a step, each inside one scale group
    programs: int = 0  # programs in the grid (0: cdiv(N, block_n) * split_k)
    split_k: int = 1  # programs a row tile, where `programs` is 0
    evict_first: bool = False  # codes marked first out of L1/L2 (read once), so x and scales stay

    def tuning_config(self, occ: int) -> triton.Config:
        """This tile for the autotuner, with `occ` programs a SM (OCC < 0: whole row tiles)."""
        return triton.Config({"BLOCK_N": self.block_n, "BLOCK_K": self.block_k, "NG": self.groups_per_step,
                              "OCC": occ, "STAGES": self.stages, "EVICT": self.evict_first},
                             num_warps=self.num_warps, num_stages=1)


CONFIG = StreamConfig  # an explicit config of this type asks for this path


def default_config(problem: MatmulProblem) -> StreamConfig:
    """The config used without autotuning (interpreter): small tiles, valid for the group."""
    bk = 64 if problem.group == problem.k else next(b for b in (64, 32, 16) if block_k_fits(b, problem.group,
                                                                                          problem.bits))
    return StreamConfig(block_n=32, block_k=bk, num_warps=4, stages=1 if problem.m == 1 else 2)


def can_run(problem: MatmulProblem, config: StreamConfig | None = None) -> tuple[bool, str]:
    if not problem.triton_runs:
        return False, "Triton kernels need a CUDA device or TRITON_INTERPRET=1"
    if problem.m > 2 and config is None:
        return False, f"M = {problem.m}: the stream runs 1-2 token rows unless a StreamConfig asks for more"
    if problem.m > 16:
        return False, f"M = {problem.m} > 16"
    if problem.m == 2 and config is None and problem.bits != 4:
        return False, "M = 2 with int8 codes: tensor cores are faster (FMA-bound on CUDA cores)"
    if not problem.words_aligned:
        return False, "codes are not readable as 32-bit words or x as 8-byte quads (K or alignment)"
    if config is not None:
        return _config_fits(problem, config)
    return True, ""


def _config_fits(problem: MatmulProblem, c: StreamConfig) -> tuple[bool, str]:
    if c.stages not in (1, 2):
        return False, f"stages {c.stages}: 1 or 2 steps are prefetched"
    if problem.group != problem.k and not block_k_fits(c.block_k // c.groups_per_step, problem.group, problem.bits):
        return False, (f"block_k {c.block_k} (/{c.groups_per_step} groups a step) does not fit scale groups of "
                       f"{problem.group}")
    want = c.programs or triton.cdiv(problem.n, c.block_n) * c.split_k
    parts = stream_parts(problem.n, problem.k, c.block_n, c.block_k, want)[1]
    if parts > MAX_SPLIT_K:
        return False, f"{want} programs would split a row tile {parts} ways (at most {MAX_SPLIT_K})"
    return True, ""


@triton.jit
def _word_codes(w_rows, s_ptr, z_ptr, offs_n, n_mask, k0, K, GROUP, stride_sn, stride_zn,
                row_words, word_off, offs_g, rows_ok, BITS: tl.constexpr, CPW: tl.constexpr, SUB: tl.constexpr,
                EVEN_K: tl.constexpr, SYM: tl.constexpr, SUB_IS_GROUP: tl.constexpr, EVICT: tl.constexpr = False):
    """Weight operands of one step at input k0: code words [BN, NG, WPG] and the scale and
    1024 + zero-point [BN, NG] of each sub-block's group. SUB_IS_GROUP (a sub-block is one whole
    group): the step's groups are consecutive, found without dividing by the run-time GROUP (fewer
    instructions in the loop). SYM: the zero-point is the format's constant, nothing is loaded."""
    NG: tl.constexpr = offs_g.shape[0]
    pw = k0 // CPW + word_off  # [NG, WPG] word index in the row
    # EVICT: codes are read once; mark them first out of L1/L2 so x and scales stay cached
    policy: tl.constexpr = "evict_first" if EVICT else ""
    if EVEN_K:
        wd = tl.load(w_rows + pw[None, :, :], mask=rows_ok[:, None, None], other=0, eviction_policy=policy)
    else:
        wd = tl.load(w_rows + pw[None, :, :], mask=rows_ok[:, None, None] & (pw < row_words)[None, :, :], other=0,
                     eviction_policy=policy)
    if SUB_IS_GROUP:
        g = (k0 // (SUB * NG)) * NG + offs_g
        if not EVEN_K:
            g = tl.minimum(g, (K - 1) // GROUP)
    else:
        g = tl.minimum(k0 + offs_g * SUB, K - 1) // GROUP  # [NG]
    sz_mask = n_mask[:, None] & (offs_g[None, :] >= 0)
    s = tl.load(s_ptr + offs_n[:, None] * stride_sn + g[None, :], mask=sz_mask, other=0.0)
    if SYM:
        zf = _sym_zero_term(s.shape, BITS)
    else:
        zf = _code_to_fp16(tl.load(z_ptr + offs_n[:, None] * stride_zn + g[None, :], mask=sz_mask, other=0))
    return wd, s, zf


@triton.jit
def _word_x(x_base, m_mask, k0, row_words, word_off, CPW: tl.constexpr, Q: tl.constexpr, ROWS: tl.constexpr,
            EVEN_K: tl.constexpr):
    """x of one step as int64 quads (4 fp16 each; Q a word: 2 for int4, 1 for int8):
    [NG, WPG, Q], or [BM, NG, WPG, Q] for several rows (ROWS)."""
    pw = k0 // CPW + word_off
    if ROWS:
        idx = (pw * Q)[None, :, :, None]
        if EVEN_K:
            xp = tl.load(x_base + idx, mask=m_mask[:, None, None, None], other=0)
        else:
            xp = tl.load(x_base + idx, mask=m_mask[:, None, None, None] & (pw < row_words)[None, :, :, None], other=0)
    else:
        if EVEN_K:
            xp = tl.load(x_base + (pw * Q)[:, :, None])
        else:
            xp = tl.load(x_base + (pw * Q)[:, :, None], mask=(pw < row_words)[:, :, None], other=0)
    return xp


@triton.jit
def _stream_step(c_ptr, s_ptr, z_ptr, x_base, m_mask, tile, kk, N, K, GROUP, stride_cn, stride_sn, stride_zn,
                 row_words, word_off, offs_g, ar_n, valid, BITS: tl.constexpr, BLOCK_N: tl.constexpr,
                 BLOCK_K: tl.constexpr, CPW: tl.constexpr, Q: tl.constexpr, SUB: tl.constexpr, ROWS: tl.constexpr,
                 EVEN_K: tl.constexpr, SYM: tl.constexpr, SUB_IS_GROUP: tl.constexpr, EVICT: tl.constexpr,
                 WAIT: tl.constexpr = False):
    """Operands of the step at row tile `tile`, inputs from kk * BLOCK_K; with `valid` false no
    codes are read (x and scales stay in bounds). WAIT (programmatic dependent launch): the
    weight loads are issued, then the kernel waits for the previous grid before it reads x."""
    k0 = kk * BLOCK_K
    offs_n = tile * BLOCK_N + ar_n
    n_mask = offs_n < N
    w_rows = c_ptr.to(tl.pointer_type(tl.int32)) + offs_n[:, None, None] * (stride_cn // 4)
    # (offs_n * 0 + valid: a vector mask; the interpreter rejects scalar-broadcast masks)
    wd, s, zf = _word_codes(w_rows, s_ptr, z_ptr, offs_n, n_mask, k0, K, GROUP, stride_sn, stride_zn,
                            row_words, word_off, offs_g, n_mask & ((offs_n * 0 + valid) != 0), BITS, CPW, SUB, EVEN_K,
                            SYM, SUB_IS_GROUP, EVICT)
    if WAIT:
        tl.extra.cuda.gdc_wait()
    xp = _word_x(x_base, m_mask, k0, row_words, word_off, CPW, Q, ROWS, EVEN_K)
    return wd, s, zf, xp


@triton.jit(do_not_specialize=["GROUP", "M_BUCKET", "OCC"])
def _gemv_words_kernel(
    x_ptr, c_ptr, s_ptr, z_ptr, b_ptr, y_ptr, ws_ptr, lock_ptr,
    M, N, K, GROUP,
    stride_xm, stride_cn, stride_sn, stride_zn, stride_zg, stride_ym,
    M_BUCKET, OCC,
    BITS: tl.constexpr, HAS_BIAS: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, EVEN_K: tl.constexpr, USE_ASM: tl.constexpr,
    NG: tl.constexpr = 1, BLOCK_M: tl.constexpr = 1, STAGES: tl.constexpr = 1, SYM: tl.constexpr = False,
    SUB_IS_GROUP: tl.constexpr = False, EVICT: tl.constexpr = False, PDL: tl.constexpr = False,
):
    """Decode on CUDA cores, M = 1 (the fast path) or a few rows (BLOCK_M > 1), as a persistent
    stream: the (row tile, K step) pairs are flattened in row-major order and each program takes
    one contiguous, equal share (stream-K), so every SM streams until the end whatever the
    layer's shape: no partial last wave, no ramp per tile. A tile split between programs is
    finished by the last of them to arrive (`_splitk_finish`: deterministic, one launch).

    Codes are read as 32-bit words (16-byte vectors), one packed PTX block per word (see
    `_word_dot`; with several rows, `_word_dot_rows` unpacks a word once for all of them), the
    next step prefetched into registers, no shared memory or barriers in the loop. A step of
    BLOCK_K inputs is NG sub-blocks, each inside one scale group, so a row is read in long runs
    (NG x 64 bytes for int4-g128) while scales stay one load per sub-block. Needs K a multiple
    of the codes per word, 4-byte aligned code rows and 8-byte aligned x rows (x is read as int64
    quads; the launcher checks). OCC (programs per SM, or whole row tiles a program) only sizes the grid."""
    CPW: tl.constexpr = 32 // BITS  # codes per word
    Q: tl.constexpr = CPW // 4  # x quads (int64) per word
    SUB: tl.constexpr = BLOCK_K // NG  # inputs per sub-block (divides the group size)
    WPG: tl.constexpr = SUB // CPW  # words per sub-block
    ROWS: tl.constexpr = BLOCK_M > 1
    dtype: tl.constexpr = x_ptr.dtype.element_ty
    ASM: tl.constexpr = USE_ASM and dtype == tl.float16
    PAIRED: tl.constexpr = ASM and BITS == 4 and not ROWS  # see `_word_dot_pairs`
    pid = tl.program_id(0)
    ar_n = tl.arange(0, BLOCK_N)
    offs_m = tl.arange(0, BLOCK_M)
    offs_g = tl.arange(0, NG)
    word_off = offs_g[:, None] * WPG + tl.arange(0, WPG)[None, :]
    m_mask = offs_m < M
    row_words = K // CPW
    ksteps = tl.cdiv(K, BLOCK_K)
    total = tl.cdiv(N, BLOCK_N) * ksteps
    per = tl.cdiv(total, tl.num_programs(0))
    t_begin = pid * per
    t_end = tl.minimum(total, t_begin + per)

    x_quads = x_ptr.to(tl.pointer_type(tl.int64))
    if ROWS:
        x_base = x_quads + (offs_m * (stride_xm // 4))[:, None, None, None] + tl.arange(0, Q)[None, None, None, :]
        acc = tl.zeros((BLOCK_M, BLOCK_N, NG, WPG), dtype=tl.float32)
    else:
        x_base = x_quads + tl.arange(0, Q)[None, None, :]
        acc = tl.zeros((BLOCK_N, NG, WPG // 2 if PAIRED else WPG), dtype=tl.float32)
    # Register prefetch, STAGES steps ahead: step t + STAGES is loaded before step t's arithmetic,
    # so STAGES steps of codes are in flight per warp with no shared memory or barriers.
    # Steps are tracked as (row tile, K step) counters advanced one step at a time (dividing the
    # flat index by ksteps each step cost two integer divisions). Past the range end nothing is
    # read (`valid` off; x and scales stay in bounds).
    tile = t_begin // ksteps
    kk = t_begin - tile * ksteps
    # PDL (programmatic dependent launch, in CUDA graphs): let the next kernel launch now, so its
    # programs take SMs as this one's finish; load the first step's weights, which no kernel
    # before this one writes in a forward pass, and wait for the previous kernel before reading x
    # (`_stream_step` WAIT). Nothing is written before that wait.
    if PDL:
        tl.extra.cuda.gdc_launch_dependents()
    wd, s, zf, xp = _stream_step(c_ptr, s_ptr, z_ptr, x_base, m_mask, tile, kk, N, K, GROUP, stride_cn, stride_sn,
                                 stride_zn, row_words, word_off, offs_g, ar_n, t_begin < t_end, BITS, BLOCK_N,
                                 BLOCK_K, CPW, Q, SUB, ROWS, EVEN_K, SYM, SUB_IS_GROUP, EVICT, PDL)
    tile_p, kk_p = _next_step(tile, kk, ksteps)
    if STAGES == 2:
        wd1, s1, zf1, xp1 = _stream_step(c_ptr, s_ptr, z_ptr, x_base, m_mask, tile_p, kk_p, N, K, GROUP, stride_cn,
                                         stride_sn, stride_zn, row_words, word_off, offs_g, ar_n, t_begin + 1 < t_end,
                                         BITS, BLOCK_N, BLOCK_K, CPW, Q, SUB, ROWS, EVEN_K, SYM, SUB_IS_GROUP, EVICT)
        tile_p, kk_p = _next_step(tile_p, kk_p, ksteps)
    for t in range(t_begin, t_end):
        wd2, s2, zf2, xp2 = _stream_step(c_ptr, s_ptr, z_ptr, x_base, m_mask, tile_p, kk_p, N, K, GROUP,
                                         stride_cn, stride_sn, stride_zn, row_words, word_off, offs_g, ar_n,
                                         t + STAGES < t_end, BITS, BLOCK_N, BLOCK_K, CPW, Q, SUB, ROWS, EVEN_K,
                                         SYM, SUB_IS_GROUP, EVICT)
        tile_p, kk_p = _next_step(tile_p, kk_p, ksteps)
        if ROWS:
            acc += _word_dot_rows(wd, xp, zf, s, BITS, ASM, dtype)
        elif PAIRED:
            acc += _word_dot_pairs(wd, xp, zf, s)
        else:
            acc += _word_dot(wd, xp, zf, s, BITS, ASM, dtype)
        acc = _stream_tile_end(acc, tile, kk, t, t_end, ksteps, per, pid, ar_n, offs_m, m_mask, N, M, stride_ym,
                               y_ptr, ws_ptr, b_ptr, lock_ptr, BLOCK_N, ROWS, HAS_BIAS)
        tile, kk = _next_step(tile, kk, ksteps)
        if STAGES == 2:
            wd, s, zf, xp = wd1, s1, zf1, xp1
            wd1, s1, zf1, xp1 = wd2, s2, zf2, xp2
        else:
            wd, s, zf, xp = wd2, s2, zf2, xp2


@triton.jit
def _next_step(tile, kk, ksteps):
    """(row tile, K step) of the stream's next step."""
    kk += 1
    wrap = kk == ksteps
    return tile + wrap.to(tl.int32), tl.where(wrap, 0, kk)


@triton.jit
def _stream_tile_end(acc, tile, kk, t, t_end, ksteps, per, pid, ar_n, offs_m, m_mask, N, M, stride_ym, y_ptr, ws_ptr, b_ptr,
                     lock_ptr, BLOCK_N: tl.constexpr, ROWS: tl.constexpr, HAS_BIAS: tl.constexpr):
    """After step t: if it ends this program's part of its row tile, reduce the accumulator and
    write the tile (or its partial, `_splitk_finish`), and return a cleared accumulator."""
    if (kk == ksteps - 1) | (t == t_end - 1):
        first = tile * ksteps
        p_first = first // per
        parts = (first + ksteps - 1) // per - p_first + 1  # programs sharing the tile
        offs_n = tile * BLOCK_N + ar_n
        n_mask = offs_n < N
        if ROWS:
            out = tl.sum(tl.sum(acc, axis=3), axis=2)  # [BLOCK_M, BLOCK_N]
            _splitk_finish(out, y_ptr + offs_m[:, None] * stride_ym + offs_n[None, :],
                           ws_ptr + offs_m[:, None] * N + offs_n[None, :], m_mask[:, None] & n_mask[None, :],
                           b_ptr, offs_n, n_mask, lock_ptr, tile, pid - p_first, M, N, parts, HAS_BIAS)
        else:
            out = tl.sum(tl.sum(acc, axis=2), axis=1)
            _splitk_finish(out, y_ptr + offs_n, ws_ptr + offs_n, n_mask, b_ptr, offs_n, n_mask, lock_ptr,
                           tile, pid - p_first, 1, N, parts, HAS_BIAS)
        acc = tl.zeros(acc.shape, dtype=tl.float32)
    return acc



_heur = triton.heuristics({
    "EVEN_K": even_k, "USE_ASM": use_asm, "SYM": lambda a: a["stride_zg"] == 0,
    "SUB_IS_GROUP": lambda a: a["GROUP"] * a.get("NG", 1) == a["BLOCK_K"],
})(_gemv_words_kernel)

# The tuning space: tiles (each a StreamConfig without a grid size) times programs a SM (OCC, a
# runtime argument: it sizes the grid, so it multiplies benchmarks but not compilations).
# groups_per_step sub-blocks a step, each inside one scale group (int4-g128: 256 bytes a row a
# step with 4), `stages` steps prefetched into registers.
_TILES = [
    StreamConfig(block_n=16, block_k=1024, num_warps=4, groups_per_step=8, stages=1),
    StreamConfig(block_n=16, block_k=1024, num_warps=4, groups_per_step=8, stages=2),
    StreamConfig(block_n=8, block_k=1024, num_warps=2, groups_per_step=8, stages=1),
    StreamConfig(block_n=4, block_k=1024, num_warps=1, groups_per_step=8, stages=1),
    StreamConfig(block_n=4, block_k=1024, num_warps=1, groups_per_step=8, stages=2),
    StreamConfig(block_n=4, block_k=2048, num_warps=1, groups_per_step=16, stages=1),
    StreamConfig(block_n=8, block_k=512, num_warps=1, groups_per_step=4, stages=1),
    StreamConfig(block_n=8, block_k=512, num_warps=2, groups_per_step=4, stages=2),
    StreamConfig(block_n=32, block_k=256, num_warps=4, groups_per_step=2, stages=1),
    StreamConfig(block_n=16, block_k=512, num_warps=4, groups_per_step=4, stages=1),
    StreamConfig(block_n=32, block_k=1024, num_warps=8, groups_per_step=8, stages=1),
    StreamConfig(block_n=64, block_k=128, num_warps=4, groups_per_step=1, stages=1),
    StreamConfig(block_n=128, block_k=64, num_warps=8, groups_per_step=1, stages=1),
    StreamConfig(block_n=16, block_k=2048, num_warps=4, groups_per_step=16, stages=1),
    StreamConfig(block_n=16, block_k=1024, num_warps=4, groups_per_step=8, stages=1, evict_first=True),
    StreamConfig(block_n=4, block_k=1024, num_warps=1, groups_per_step=8, stages=1, evict_first=True),
    StreamConfig(block_n=8, block_k=1024, num_warps=2, groups_per_step=8, stages=1, evict_first=True),
]
# with several rows: fewer, smaller tiles (the accumulator grows with the rows)
_ROWS_TILES = [
    StreamConfig(block_n=16, block_k=512, num_warps=4, groups_per_step=4, stages=2),
    StreamConfig(block_n=32, block_k=256, num_warps=4, groups_per_step=2, stages=2),
    StreamConfig(block_n=16, block_k=256, num_warps=4, groups_per_step=2, stages=2),
    StreamConfig(block_n=32, block_k=128, num_warps=4, groups_per_step=1, stages=2),
    StreamConfig(block_n=8, block_k=1024, num_warps=4, groups_per_step=8, stages=2),
    StreamConfig(block_n=16, block_k=512, num_warps=4, groups_per_step=4, stages=1),
    StreamConfig(block_n=32, block_k=256, num_warps=4, groups_per_step=2, stages=1),
    StreamConfig(block_n=64, block_k=128, num_warps=4, groups_per_step=1, stages=1),
    StreamConfig(block_n=8, block_k=1024, num_warps=4, groups_per_step=8, stages=1),
    StreamConfig(block_n=16, block_k=1024, num_warps=4, groups_per_step=8, stages=1),
    StreamConfig(block_n=4, block_k=512, num_warps=1, groups_per_step=4, stages=1),
    StreamConfig(block_n=4, block_k=512, num_warps=1, groups_per_step=4, stages=2),
    StreamConfig(block_n=8, block_k=256, num_warps=2, groups_per_step=2, stages=2),
    StreamConfig(block_n=4, block_k=1024, num_warps=1, groups_per_step=8, stages=1),
]
_OCCUPANCY = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)  # programs per SM (x warps: at most 64 warps)
# M = 1 only: shares of 1, 2 or 4 whole row tiles (OCC = -1, -2, -4), so no tile is split between
# programs and none pays the split-K finish (a release/acquire atomic and a read of the others'
# partials), which weighs most where rows are short. On longer rows the tuner, timing single
# launches, picked them where graphs of back-to-back calls ran them slower, so they are offered
# up to this K only (docs/kernels.md).
_WHOLE_TILES = (-1, -2, -4)
WHOLE_TILES_MAX_K = 4096


def _configs(tiles: list[StreamConfig], occupancy=_OCCUPANCY) -> list[triton.Config]:
    return [t.tuning_config(occ) for t in tiles for occ in occupancy if occ * t.num_warps <= 64]


def stream_programs(n: int, block_n: int, occ: int, sms: int) -> int:
    """Programs the stream asks for: OCC > 0 programs a SM; OCC = -j, one program a j whole row
    tiles (no tile shared between programs, so no split-K finish) where j divides the tiles."""
    return sms * occ if occ > 0 else triton.cdiv(triton.cdiv(n, block_n), -occ)


def stream_parts(n: int, k: int, block_n: int, block_k: int, programs: int) -> tuple[int, int]:
    """(programs that get work, most programs sharing one row tile)."""
    ksteps = triton.cdiv(k, block_k)
    total = triton.cdiv(n, block_n) * ksteps
    per = triton.cdiv(total, max(1, min(programs, total)))
    # a tile's ksteps consecutive steps, starting anywhere in a share of `per`, meet at most
    # cdiv(ksteps - 1, per) + 1 programs; none is shared when shares are whole tiles
    return triton.cdiv(total, per), 1 if per % ksteps == 0 else triton.cdiv(ksteps - 1, per) + 1


def _one_group_a_sub_block(c: triton.Config, group: int, bits: int) -> triton.Config | None:
    """A config whose sub-blocks span several scale groups (groups of 32 or 64 under sub-blocks of
    64-128), re-cut into one sub-block a group: same tile, warps and stages. None where the step
    is not whole groups."""
    bk = c.kwargs["BLOCK_K"]
    if bk % group or not block_k_fits(group, group, bits):
        return None
    return triton.Config({**c.kwargs, "NG": bk // group}, num_warps=c.num_warps, num_stages=c.num_stages)


def _fits_or_recut(c: triton.Config, a: dict) -> triton.Config | None:
    if fits_groups(c.kwargs["BLOCK_K"] // c.kwargs.get("NG", 1), a["GROUP"], a["K"], a["BITS"]):
        return c
    return _one_group_a_sub_block(c, a["GROUP"], a["BITS"])


def _worth_timing(c: triton.Config, a: dict) -> bool:
    n, k, bits = a["N"], a["K"], a["BITS"]
    bn, bk, occ = c.kwargs["BLOCK_N"], c.kwargs["BLOCK_K"], c.kwargs["OCC"]
    if a.get("BLOCK_M", 1) * bn * bk // (32 // bits) > 64 * 32 * c.num_warps:
        return False  # fp32 accumulator: at most 64 registers a thread
    if occ < 0 and (k > WHOLE_TILES_MAX_K or triton.cdiv(n, bn) % -occ):
        return False  # (shares are whole tiles only where j divides the tile count)
    # at most as many partial sums a tile as the workspace holds
    return stream_parts(n, k, bn, bk, stream_programs(n, bn, occ, num_sms()))[1] <= MAX_SPLIT_K


def prune(configs, named_args, **kwargs) -> list[triton.Config]:
    """The tuner's configs that can run this problem (triton.autotune's early_config_prune)."""
    return prune_configs(configs, {**named_args, **kwargs}, _fits_or_recut, _worth_timing)


tuned_one_row = autotuned(_heur, _configs(_TILES, _OCCUPANCY + _WHOLE_TILES), prune)
tuned_rows = autotuned(_heur, _configs(_ROWS_TILES), prune)
def _programs(problem: MatmulProblem, block_n: int, block_k: int, occ: int, sms: int) -> int:
    return stream_parts(problem.n, problem.k, block_n, block_k, stream_programs(problem.n, block_n, occ, sms))[0]


def launch(problem: MatmulProblem, ops: Operands, config: StreamConfig | None, state: LaunchState) -> None:
    m, n = problem.m, problem.n
    x2 = ops.x
    ws = torch.empty(MAX_SPLIT_K * m * n, dtype=torch.float32, device=x2.device)  # the stream splits any tile
    args = ops.split_k_args(ws, state.split_k_locks(x2.device, n))
    common = ops.common(problem)
    sms = num_sms()
    capable = state.pdl_capable(x2, problem.interpreting)
    capturing = capable and torch.cuda.is_current_stream_capturing()
    sig = launch_sig(args, common) if capable else None
    if problem.tuned:
        tuned = tuned_one_row if m == 1 else tuned_rows
        pdl = capturing and state.pdl_chain.get(sig, False)  # decided at the eager launch (below)
        tuned[lambda meta: (_programs(problem, meta["BLOCK_N"], meta["BLOCK_K"], meta["OCC"], sms),)](
            *args, **common, BLOCK_M=m_bucket(m), PDL=pdl, launch_pdl=pdl)
        best = tuned.best_config
        state.last["decode"] = best
        kwargs = {"BLOCK_M": m_bucket(m), **best.all_kwargs()}
        programs = _programs(problem, best.kwargs["BLOCK_N"], best.kwargs["BLOCK_K"], best.kwargs["OCC"], sms)
    else:
        c = config or default_config(problem)
        # an explicit config's split_k sets the programs per row tile (or `programs` the total)
        programs = stream_parts(n, problem.k, c.block_n, c.block_k,
                                c.programs or triton.cdiv(n, c.block_n) * c.split_k)[0]
        kwargs = {"BLOCK_M": m_bucket(m), **c.tuning_config(0).all_kwargs()}
        pdl = capturing and programs >= state.pdl_min_programs_per_sm * sms
        _heur[(programs,)](*args, **common, **kwargs, PDL=pdl, launch_pdl=pdl)
    state.last["decode_pdl"] = pdl
    if capable and not capturing:
        chain = programs >= state.pdl_min_programs_per_sm * sms
        if chain:
            _warm_pdl(state, sig, kwargs, args, common)
        if problem.tuned and sig not in state.pdl_chain:
            state.pdl_chain[sig] = chain and _pick_pdl(state, sig, best, kwargs, programs, args, common)


def _warm_pdl(state: LaunchState, sig: tuple, kwargs: dict, args: tuple, common: dict) -> None:
    """Compile the PDL variant of an eager launch's kernel now: a graph capture must not compile
    (loading a module is not allowed while a stream captures)."""
    key = (sig, tuple(sorted(kwargs.items())))
    if key not in state.pdl_warm:
        _heur.warmup(*args, **common, **kwargs, PDL=True, launch_pdl=True, grid=(1,))
        state.pdl_warm.add(key)


def _pick_pdl(state: LaunchState, sig: tuple, best: triton.Config, kwargs: dict, programs: int, args: tuple,
              common: dict) -> bool:
    """Whether the tuned config runs faster with PDL than without, launched back to back in a CUDA
    graph (`graph_pick`; cached on disk, as the tuner's pick is). PDL's gain is not predictable
    from the config: with a few programs a SM it can cost more than it saves (docs/kernels.md)."""

    def run(c: triton.Config, pdl: bool, weight: tuple) -> None:
        _heur[(programs,)](args[0], *weight, *args[4:], **common, **kwargs, PDL=pdl, launch_pdl=pdl)

    return bool(state.graph_pick(graph_pick_key(_gemv_words_kernel, sig, best), [best], run, args[1:4])["pdl"])
