"""Small-M path (2 <= M <= 16): y^T = W x^T on tensor cores with `tl.dot`.

The weight tile is the *A* operand of `tl.dot` and stays in registers (wgmma, or mma.sync for
tiles of 1-2 warps, which the tuner prefers: x^T stays in registers for a warp's rows); x^T, 4, 8
or 16 columns (`DOT_ROWS`: the fewest that hold M pay the least shared-memory traffic), is B.
The dot runs on the exact integers q - z (one HSUB2 or HFMA2 a pair) and each scale group's
scale multiplies the fp32 partial product, not every weight; a step may hold two or four whole
groups (NG), so a pipeline stage carries that many times the bytes. int4 bytes are not
interleaved: low nibbles multiply x[0::2] and high nibbles x[1::2], two dots a group.

In CUDA graph capture on sm_90+ the config and PDL setting are those timed fastest back to back
in a graph among the tuner's best few (`graph_pick`), picked at the eager launch and kept in the
`LaunchState`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from autoquant.kernels import graph_pick
from autoquant.kernels.launch_state import LaunchState, graph_pick_key, launch_sig
from autoquant.kernels.problem import (
    MAX_SPLIT_K, SMALL_M_MAX, MatmulProblem, Operands, autotuned, block_k_fits, even_k, m_bucket,
    prune_split_k_tiles, split_k_workspace, use_asm, x_pairs,
)
from autoquant.kernels.tile_ops import (
    _code_to_fp16, _codes_minus_zero, _halves, _load_codes, _scale_zero, _splitk_finish, _sym_zero_term,
)

NAME = "small-M tl.dot"
# Rows of x a tl.dot step multiplies (its N): every row costs shared-memory traffic whether or
# not it holds a token, so M <= 8 need not pay for 16. The launcher takes the fewest that hold
# M_BUCKET (in the tuning key), so tuning does not multiply by them.
DOT_ROWS = (4, 8, 16)


@dataclass(frozen=True)
class DotConfig:
    """An explicit launch of the small-M tl.dot kernel (tests, benchmarks of one config)."""

    block_n: int  # rows of W a program
    block_k: int  # inputs a step
    num_warps: int = 4
    num_stages: int = 3  # software pipeline stages (cp.async)
    split_k: int = 1  # programs along K, summed by the last to arrive
    block_m: int = 16  # rows of x a step: one of DOT_ROWS, at least M
    groups_per_step: int = 1  # 1, 2 or 4 sub-blocks a step, each inside one scale group

    def tuning_config(self) -> triton.Config:
        """This config for the autotuner (the x rows come from the launch: `dot_rows`)."""
        return triton.Config({"BLOCK_N": self.block_n, "BLOCK_K": self.block_k, "SPLIT_K": self.split_k,
                              "NG": self.groups_per_step}, num_warps=self.num_warps, num_stages=self.num_stages)


def dot_rows(m: int) -> int:
    """Rows of the x tile for M tokens: the fewest of DOT_ROWS that hold them."""
    return next(r for r in DOT_ROWS if r >= m)


CONFIG = DotConfig  # an explicit config of this type asks for this path


def default_config(problem: MatmulProblem) -> DotConfig:
    """The config used without autotuning (interpreter): small tiles, valid for the group."""
    bk = 64 if problem.group == problem.k else next(b for b in (64, 32, 16) if block_k_fits(b, problem.group,
                                                                                          problem.bits))
    return DotConfig(block_n=32, block_k=bk, num_warps=4, num_stages=2, block_m=dot_rows(problem.m))


def can_run(problem: MatmulProblem, config: DotConfig | None = None) -> tuple[bool, str]:
    if not problem.triton_runs:
        return False, "Triton kernels need a CUDA device or TRITON_INTERPRET=1"
    if not 2 <= problem.m <= SMALL_M_MAX:
        return False, f"M = {problem.m}: it runs 2-{SMALL_M_MAX} tokens"
    if config is None:
        return True, ""
    c = config
    if c.split_k > MAX_SPLIT_K:
        return False, f"split_k at most {MAX_SPLIT_K}"
    if c.block_m not in DOT_ROWS or c.block_m < problem.m:
        return False, f"block_m {c.block_m} for {problem.m} tokens: one of {DOT_ROWS}, at least {problem.m}"
    if c.groups_per_step not in (1, 2, 4):
        return False, "the tl.dot kernel takes 1, 2 or 4 scale groups a step"
    if problem.group != problem.k and not block_k_fits(c.block_k // c.groups_per_step, problem.group, problem.bits):
        return False, (f"block_k {c.block_k} (/{c.groups_per_step} groups a step) does not fit scale groups of "
                       f"{problem.group}")
    return True, ""


@triton.jit
def _step_scales(s_ptr, z_ptr, offs_n, n_mask, k, K, GROUP, stride_sn, stride_zn, stride_zg,
                 SUB: tl.constexpr, NG: tl.constexpr, SYM: tl.constexpr, BITS: tl.constexpr,
                 SZ_PAIRS: tl.constexpr = False):
    """(scale, 1024 + zero-point) [BN] of each of the NG (1, 2 or 4) sub-blocks of SUB inputs from
    k, as four pairs (unused ones repeat the first). [BN] loads, not one [BN, NG] tile: a 2-D
    tile's layout makes Triton run the unpack in the load layout and convert the whole weight
    tile to the dot operand's (about twice the instructions a step on sm_90). SZ_PAIRS (NG = 2
    whole groups a step, aligned): both scales of a row in one 4-byte load, both zero-points in
    one 2-byte load."""
    if SZ_PAIRS:
        g = tl.minimum(k, K - 2 * SUB) // GROUP  # even
        sp = tl.load(s_ptr.to(tl.pointer_type(tl.int32)) + (offs_n * stride_sn + g) // 2, mask=n_mask, other=0)
        s0, s1 = _halves(sp, tl.float16)
        if SYM:
            z0 = _sym_zero_term(s0.shape, BITS)
            z1 = z0
        else:
            zp = tl.load(z_ptr.to(tl.pointer_type(tl.int16)) + (offs_n * stride_zn + g) // 2, mask=n_mask, other=0)
            z0 = _code_to_fp16(zp & 0xFF)
            z1 = _code_to_fp16((zp >> 8) & 0xFF)
        s2, z2, s3, z3 = s0, z0, s0, z0
    else:
        s0, z0 = _scale_zero(s_ptr, z_ptr, offs_n, n_mask, k, K, GROUP, stride_sn, stride_zn, stride_zg, SYM, BITS)
        s1, z1, s2, z2, s3, z3 = s0, z0, s0, z0, s0, z0
        if NG >= 2:
            s1, z1 = _scale_zero(s_ptr, z_ptr, offs_n, n_mask, k + SUB, K, GROUP, stride_sn, stride_zn, stride_zg,
                                 SYM, BITS)
        if NG == 4:
            s2, z2 = _scale_zero(s_ptr, z_ptr, offs_n, n_mask, k + 2 * SUB, K, GROUP, stride_sn, stride_zn,
                                 stride_zg, SYM, BITS)
            s3, z3 = _scale_zero(s_ptr, z_ptr, offs_n, n_mask, k + 3 * SUB, K, GROUP, stride_sn, stride_zn,
                                 stride_zg, SYM, BITS)
    return s0, z0, s1, z1, s2, z2, s3, z3


@triton.jit
def _pick(J: tl.constexpr, a0, a1, a2, a3):
    if J == 0:
        v = a0
    elif J == 1:
        v = a1
    elif J == 2:
        v = a2
    else:
        v = a3
    return v


@triton.jit
def _small_m_part(c_rows, x_cols, x_pairs, k0, zf, n_mask, m_mask, K, row_bytes,
                  BITS: tl.constexpr, BLOCK_K: tl.constexpr, EVEN_K: tl.constexpr, X_PAIRS: tl.constexpr,
                  USE_ASM: tl.constexpr, dtype: tl.constexpr):
    """The [BN, BLOCK_M] fp32 product of (q - z) for inputs k0 .. k0 + BLOCK_K (inside one scale
    group) with x^T, unscaled."""
    PACK: tl.constexpr = 8 // BITS  # codes per byte
    offs_b = tl.arange(0, BLOCK_K // PACK)
    kb = k0 // PACK + offs_b
    byt = _load_codes(c_rows, kb, n_mask, row_bytes, EVEN_K)
    q_lo, q_hi = _codes_minus_zero(byt, zf, BITS, USE_ASM)
    if BITS == 8:
        xk = k0 + offs_b
        if EVEN_K:
            xt = tl.load(x_cols + xk[:, None], mask=m_mask[None, :], other=0.0)
        else:
            xt = tl.load(x_cols + xk[:, None], mask=m_mask[None, :] & (xk[:, None] < K), other=0.0)
        return tl.dot(q_lo.to(dtype), xt)
    if X_PAIRS:
        if EVEN_K:
            pairs = tl.load(x_pairs + kb[:, None], mask=m_mask[None, :], other=0)
        else:
            pairs = tl.load(x_pairs + kb[:, None], mask=m_mask[None, :] & (kb[:, None] < K // 2), other=0)
        xe, xo = _halves(pairs, dtype)
    else:
        xk = 2 * kb
        xe = tl.load(x_cols + xk[:, None], mask=m_mask[None, :] & (xk[:, None] < K), other=0.0)
        xo = tl.load(x_cols + xk[:, None] + 1, mask=m_mask[None, :] & (xk[:, None] + 1 < K), other=0.0)
    part = tl.dot(q_lo.to(dtype), xe)
    return tl.dot(q_hi.to(dtype), xo, part)


@triton.jit(do_not_specialize=["GROUP", "SPLIT_K", "M_BUCKET", "stride_zn", "stride_zg"])
def _small_m_kernel(
    x_ptr, c_ptr, s_ptr, z_ptr, b_ptr, y_ptr, ws_ptr, lock_ptr,
    M, N, K, GROUP, SPLIT_K,
    stride_xm, stride_cn, stride_sn, stride_zn, stride_zg, stride_ym,
    M_BUCKET,
    BITS: tl.constexpr, HAS_BIAS: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, EVEN_K: tl.constexpr, X_PAIRS: tl.constexpr,
    USE_ASM: tl.constexpr, BLOCK_M: tl.constexpr = 16, SYM: tl.constexpr = False, NG: tl.constexpr = 1,
    SZ_PAIRS: tl.constexpr = False, PDL: tl.constexpr = False,
):
    """y^T = W x^T for 2 <= M <= 16 on tensor cores. A step is NG (1, 2 or 4) sub-blocks, each inside
    one scale group, so the dot runs on the exact integers q - z and the group's scale multiplies
    the sub-block's [BN, M] partial product (fp32) instead of every weight: one HFMA2/HSUB2 a
    weight pair, not two. SYM: the format's fixed zero-point, nothing loaded. PDL: launched with
    programmatic dependent launch (`_pick_dot`): the next kernel may start now; this one asks L2
    for the first 256 code bytes of each of its rows (a prefetch into L2, the point of coherence,
    cannot read stale data) and waits for the kernel before it ahead of any load or store."""
    PACK: tl.constexpr = 8 // BITS  # codes per byte
    SUB: tl.constexpr = BLOCK_K // NG
    dtype = x_ptr.dtype.element_ty
    pid_n = tl.program_id(0)
    pid_k = tl.program_id(1)

    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_m = tl.arange(0, BLOCK_M)
    n_mask = offs_n < N
    m_mask = offs_m < M
    row_bytes = (K + PACK - 1) // PACK

    steps_per_split = tl.cdiv(tl.cdiv(K, BLOCK_K), SPLIT_K)
    k_begin = pid_k * steps_per_split * BLOCK_K
    k_end = tl.minimum(K, k_begin + steps_per_split * BLOCK_K)

    c_rows = c_ptr + offs_n[:, None] * stride_cn
    if PDL:
        tl.extra.cuda.gdc_launch_dependents()
        pf = tl.minimum(k_begin // PACK + tl.arange(0, 2) * 128, row_bytes - 1)
        tl.inline_asm_elementwise("prefetch.global.L2 [$1]; mov.u32 $0, 0;", "=r,l",
                                  [c_ptr + tl.where(n_mask, offs_n, 0)[:, None] * stride_cn + pf[None, :]],
                                  dtype=tl.int32, is_pure=False, pack=1)
        tl.extra.cuda.gdc_wait()
    x_cols = x_ptr + offs_m[None, :] * stride_xm
    # x as int32 pairs (x[2j], x[2j+1]): one 4-byte load feeds the low- and high-nibble dots
    x_pairs = x_ptr.to(tl.pointer_type(tl.int32)) + offs_m[None, :] * (stride_xm // 2)
    acc = tl.zeros((BLOCK_N, BLOCK_M), dtype=tl.float32)
    # Scales and zero-points are per-row gathers too narrow to pipeline: fetch one step ahead.
    s0, z0, s1, z1, s2, z2, s3, z3 = _step_scales(s_ptr, z_ptr, offs_n, n_mask, k_begin, K, GROUP, stride_sn,
                                                  stride_zn, stride_zg, SUB, NG, SYM, BITS, SZ_PAIRS)
    for k0 in range(k_begin, k_end, BLOCK_K):
        n0, nz0, n1, nz1, n2, nz2, n3, nz3 = _step_scales(s_ptr, z_ptr, offs_n, n_mask, k0 + BLOCK_K, K, GROUP,
                                                          stride_sn, stride_zn, stride_zg, SUB, NG, SYM, BITS,
                                                          SZ_PAIRS)
        for j in tl.static_range(NG):
            part = _small_m_part(c_rows, x_cols, x_pairs, k0 + j * SUB, _pick(j, z0, z1, z2, z3), n_mask, m_mask, K,
                                 row_bytes, BITS, SUB, EVEN_K, X_PAIRS, USE_ASM, dtype)
            acc += part * _pick(j, s0, s1, s2, s3).to(tl.float32)[:, None]
        s0, z0, s1, z1, s2, z2, s3, z3 = n0, nz0, n1, nz1, n2, nz2, n3, nz3

    # acc is y^T [BLOCK_N, BLOCK_M]; written as y [BLOCK_M, BLOCK_N] (split-K: `_splitk_finish`)
    _splitk_finish(tl.trans(acc), y_ptr + offs_m[:, None] * stride_ym + offs_n[None, :],
                   ws_ptr + offs_m[:, None] * N + offs_n[None, :], m_mask[:, None] & n_mask[None, :],
                   b_ptr, offs_n, n_mask, lock_ptr, pid_n, pid_k, M, N, SPLIT_K, HAS_BIAS)



def _sz_pairs(a: dict) -> bool:
    """Two whole groups a step: each row's two scales (zero-points) can be read as one 4-byte
    (2-byte) word: even group count a row and aligned bases."""
    return (a.get("NG", 1) == 2 and a["GROUP"] * 2 == a["BLOCK_K"] and even_k(a)
            and a["stride_sn"] % 2 == 0 and a["s_ptr"].data_ptr() % 4 == 0
            and (a["stride_zg"] == 0 or (a["stride_zn"] % 2 == 0 and a["z_ptr"].data_ptr() % 2 == 0)))


_heur = triton.heuristics({
    "EVEN_K": even_k, "X_PAIRS": x_pairs, "USE_ASM": use_asm, "SYM": lambda a: a["stride_zg"] == 0,
    "SZ_PAIRS": _sz_pairs,
})(_small_m_kernel)

# The tuning space: tiles times split factors. Few distinct compiled variants; SPLIT_K is a
# runtime argument, so the split factors multiply benchmarks but not compilations.
_TILES = [
    DotConfig(block_n=64, block_k=128, num_warps=4, num_stages=4),
    DotConfig(block_n=64, block_k=256, num_warps=4, num_stages=3),
    DotConfig(block_n=128, block_k=128, num_warps=4, num_stages=4),
    DotConfig(block_n=128, block_k=64, num_warps=4, num_stages=4),
    DotConfig(block_n=128, block_k=32, num_warps=4, num_stages=6),
    DotConfig(block_n=64, block_k=32, num_warps=4, num_stages=8),
    DotConfig(block_n=32, block_k=64, num_warps=2, num_stages=6),
    # 1-2 warps of 32-64 rows: mma.sync with x^T in registers. At M = 16, wgmma (4+ warps, 64-row
    # instructions that each read x^T from shared memory) is bound by shared-memory traffic, not DRAM
    DotConfig(block_n=64, block_k=128, num_warps=2, num_stages=3),
    DotConfig(block_n=64, block_k=128, num_warps=2, num_stages=4),
    DotConfig(block_n=32, block_k=128, num_warps=1, num_stages=4),
    DotConfig(block_n=32, block_k=128, num_warps=1, num_stages=6),
    DotConfig(block_n=64, block_k=64, num_warps=2, num_stages=6),
    DotConfig(block_n=32, block_k=64, num_warps=1, num_stages=8),
    DotConfig(block_n=64, block_k=32, num_warps=2, num_stages=8),
    # two scale groups a step: twice the bytes in flight a pipeline stage (large layers)
    DotConfig(block_n=64, block_k=256, num_warps=2, num_stages=3, groups_per_step=2),
    DotConfig(block_n=64, block_k=256, num_warps=2, num_stages=4, groups_per_step=2),
    DotConfig(block_n=32, block_k=256, num_warps=1, num_stages=4, groups_per_step=2),
    # the same for groups of 64 and 32 (2-4 groups a step), offered only where a sub-block is one group
    DotConfig(block_n=64, block_k=128, num_warps=2, num_stages=3, groups_per_step=2),
    DotConfig(block_n=64, block_k=128, num_warps=2, num_stages=4, groups_per_step=2),
    DotConfig(block_n=64, block_k=256, num_warps=2, num_stages=3, groups_per_step=4),
    DotConfig(block_n=64, block_k=128, num_warps=2, num_stages=3, groups_per_step=4),
    DotConfig(block_n=64, block_k=128, num_warps=2, num_stages=4, groups_per_step=4),
    DotConfig(block_n=64, block_k=64, num_warps=2, num_stages=4, groups_per_step=2),
    DotConfig(block_n=32, block_k=128, num_warps=1, num_stages=4, groups_per_step=4),
    DotConfig(block_n=64, block_k=128, num_warps=4, num_stages=3, groups_per_step=4),
]
_SPLITS = (1, 2, 4, 8)

tuned = autotuned(_heur, [dataclasses.replace(t, split_k=sk).tuning_config() for t in _TILES for sk in _SPLITS],
                  prune_split_k_tiles)


def launch(problem: MatmulProblem, ops: Operands, config: DotConfig | None, state: LaunchState) -> None:
    n, x2 = problem.n, ops.x
    ws = split_k_workspace(problem, config is not None and config.split_k > 1, x2.device)
    args, common = ops.split_k_args(ws, state.split_k_locks(x2.device, n)), ops.common(problem)
    if not problem.tuned:
        c = config or default_config(problem)
        _heur[(triton.cdiv(n, c.block_n), c.split_k)](
            *args, **common, SPLIT_K=c.split_k, BLOCK_N=c.block_n, BLOCK_K=c.block_k, num_warps=c.num_warps,
            num_stages=c.num_stages, BLOCK_M=c.block_m, NG=c.groups_per_step)
        state.last["decode_pdl"] = False
        return
    rows = {"BLOCK_M": dot_rows(m_bucket(problem.m))}
    weight = (ops.codes, ops.scales, ops.z)

    def run(c: triton.Config, pdl: bool, w: tuple) -> None:
        _heur[(triton.cdiv(n, c.kwargs["BLOCK_N"]), c.kwargs["SPLIT_K"])](
            x2, *w, *args[4:], **common, **rows, **c.all_kwargs(), PDL=pdl, launch_pdl=pdl)

    capable = state.pdl_capable(x2, problem.interpreting)
    capturing = capable and torch.cuda.is_current_stream_capturing()
    sig = launch_sig(args, common) if capable else None
    picked = state.dot_pick.get(sig) if capable else None
    if picked is not None and capturing:
        run(picked[0], picked[1], weight)  # the graph-timed choice (below)
        state.last["decode"], state.last["decode_pdl"] = picked
        return
    seen = len(tuned.cache)
    tuned[lambda meta: (triton.cdiv(n, meta["BLOCK_N"]), meta["SPLIT_K"])](*args, **common, **rows)
    state.last["decode"], state.last["decode_pdl"] = tuned.best_config, False
    if capable and picked is None and not capturing:
        # the tuner's timings belong to this problem only if this launch tuned it
        best = tuned.best_config
        timings = getattr(tuned, "configs_timings", None) if len(tuned.cache) > seen else None
        result = state.graph_pick(graph_pick_key(_small_m_kernel, sig, best), graph_pick.candidates(timings, best),
                                  run, weight)
        state.dot_pick[sig] = (graph_pick.config_of(result["config"]), result["pdl"])
