"""Prefill path for 16 < M < DEQUANT_MIN_M (and any M > 16 with an explicit config): a tiled
`tl.dot` GEMM whose B tile is dequantized in registers (`tl.join` interleaves the nibbles)
before the dot. From DEQUANT_MIN_M on, tuned launches take a GEMM path instead (`prefill_dequant`,
`wgmma_int4`), where dequantizing every tile costs more than the GEMM gains.
"""

from __future__ import annotations

from dataclasses import dataclass

import triton
import triton.language as tl

from autoquant.kernels.launch_state import LaunchState
from autoquant.kernels.problem import (
    SMALL_M_MAX, MatmulProblem, Operands, autotuned, block_k_fits, even_k, fits_groups, use_asm,
)
from autoquant.kernels.tile_ops import _dequant_tile, _load_codes, _scale_zero

NAME = "prefill tl.dot"


@dataclass(frozen=True)
class TiledConfig:
    """An explicit launch of the tiled kernel (tests, benchmarks of one config)."""

    block_m: int  # rows of x a program
    block_n: int  # rows of W a program
    block_k: int  # inputs a step (inside one scale group)
    num_warps: int = 4
    num_stages: int = 2  # software pipeline stages (cp.async)


CONFIG = TiledConfig  # an explicit config of this type asks for this path


def default_config(problem: MatmulProblem) -> TiledConfig:
    """The config used without autotuning (interpreter): small tiles, valid for the group."""
    bk = 64 if problem.group == problem.k else next(b for b in (64, 32, 16) if block_k_fits(b, problem.group,
                                                                                          problem.bits))
    return TiledConfig(block_m=32, block_n=32, block_k=bk, num_warps=4, num_stages=2)


def can_run(problem: MatmulProblem, config: TiledConfig | None = None) -> tuple[bool, str]:
    if not problem.triton_runs:
        return False, "Triton kernels need a CUDA device or TRITON_INTERPRET=1"
    if problem.m <= SMALL_M_MAX:
        return False, f"M = {problem.m} <= {SMALL_M_MAX}: a decode path's"
    if config is not None and problem.group != problem.k and not block_k_fits(config.block_k, problem.group,
                                                                              problem.bits):
        return False, f"block_k {config.block_k} does not fit scale groups of {problem.group}"
    return True, ""


@triton.jit(do_not_specialize=["GROUP", "M_BUCKET", "stride_zn", "stride_zg"])
def _large_m_kernel(
    x_ptr, c_ptr, s_ptr, z_ptr, b_ptr, y_ptr,
    M, N, K, GROUP,
    stride_xm, stride_cn, stride_sn, stride_zn, stride_zg, stride_ym,
    M_BUCKET,
    BITS: tl.constexpr, HAS_BIAS: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, EVEN_K: tl.constexpr,
    USE_ASM: tl.constexpr, GROUP_M: tl.constexpr = 8,
):
    PACK: tl.constexpr = 8 // BITS
    BKB: tl.constexpr = BLOCK_K // PACK
    dtype = x_ptr.dtype.element_ty
    # Grouped tile order: GROUP_M row tiles share each weight tile while it is in L2.
    pid = tl.program_id(0)
    tiles_m = tl.cdiv(M, BLOCK_M)
    tiles_n = tl.cdiv(N, BLOCK_N)
    per_group = GROUP_M * tiles_n
    first_m = (pid // per_group) * GROUP_M
    group_rows = tl.minimum(tiles_m - first_m, GROUP_M)
    pid_m = first_m + (pid % per_group) % group_rows
    pid_n = (pid % per_group) // group_rows

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    offs_b = tl.arange(0, BKB)
    m_mask = offs_m < M
    n_mask = offs_n < N
    row_bytes = (K + PACK - 1) // PACK

    x_rows = x_ptr + offs_m[:, None] * stride_xm
    c_rows = c_ptr + offs_n[:, None] * stride_cn
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    s, zf = _scale_zero(s_ptr, z_ptr, offs_n, n_mask, 0, K, GROUP, stride_sn, stride_zn, stride_zg)
    for k0 in range(0, K, BLOCK_K):
        s_next, zf_next = _scale_zero(s_ptr, z_ptr, offs_n, n_mask, k0 + BLOCK_K, K, GROUP,
                                      stride_sn, stride_zn, stride_zg)
        xk = k0 + offs_k
        if EVEN_K:
            x = tl.load(x_rows + xk[None, :], mask=m_mask[:, None], other=0.0)
        else:
            x = tl.load(x_rows + xk[None, :], mask=m_mask[:, None] & (xk[None, :] < K), other=0.0)
        byt = _load_codes(c_rows, k0 // PACK + offs_b, n_mask, row_bytes, EVEN_K)
        w = _dequant_tile(byt, s, zf, BITS, BLOCK_N, BLOCK_K, USE_ASM, dtype)
        acc = tl.dot(x, tl.trans(w), acc)
        s, zf = s_next, zf_next

    if HAS_BIAS:
        acc += tl.load(b_ptr + offs_n, mask=n_mask, other=0.0).to(tl.float32)[None, :]
    y_ptrs = y_ptr + offs_m[:, None] * stride_ym + offs_n[None, :]
    tl.store(y_ptrs, acc.to(dtype), mask=m_mask[:, None] & n_mask[None, :])


_heur = triton.heuristics({"EVEN_K": even_k, "USE_ASM": use_asm})(_large_m_kernel)
_TILES = [  # the tuning space
    TiledConfig(block_m=128, block_n=128, block_k=64, num_warps=8, num_stages=3),
    TiledConfig(block_m=128, block_n=256, block_k=64, num_warps=8, num_stages=3),
    TiledConfig(block_m=64, block_n=128, block_k=64, num_warps=4, num_stages=4),
    TiledConfig(block_m=128, block_n=128, block_k=32, num_warps=8, num_stages=4),
    TiledConfig(block_m=64, block_n=256, block_k=64, num_warps=8, num_stages=3),
    TiledConfig(block_m=128, block_n=64, block_k=64, num_warps=4, num_stages=4),
    TiledConfig(block_m=32, block_n=128, block_k=64, num_warps=4, num_stages=4),
    TiledConfig(block_m=64, block_n=64, block_k=32, num_warps=4, num_stages=5),
    TiledConfig(block_m=128, block_n=128, block_k=128, num_warps=8, num_stages=3),
    TiledConfig(block_m=128, block_n=256, block_k=64, num_warps=8, num_stages=4),
    TiledConfig(block_m=256, block_n=128, block_k=64, num_warps=8, num_stages=3),
]


def prune(configs, named_args, **kwargs) -> list[triton.Config]:
    """Configs whose K step lies inside one scale group and whose row tile is no taller than M needs."""
    a = {**named_args, **kwargs}
    k, group, bits, m = a["K"], a["GROUP"], a["BITS"], a["M"]
    fitting = [c for c in configs if fits_groups(c.kwargs["BLOCK_K"], group, k, bits)]
    out = [c for c in fitting if c.kwargs["BLOCK_M"] <= max(32, triton.next_power_of_2(m))]
    if not fitting:  # a step straddling two scale groups would give wrong numbers
        raise ValueError(f"no kernel config fits scale groups of {group} ({bits}-bit, K = {k})")
    return out or fitting[:1]


tuned = autotuned(_heur, [triton.Config({"BLOCK_M": t.block_m, "BLOCK_N": t.block_n, "BLOCK_K": t.block_k},
                                        num_warps=t.num_warps, num_stages=t.num_stages) for t in _TILES], prune)


def launch(problem: MatmulProblem, ops: Operands, config: TiledConfig | None, state: LaunchState) -> None:
    m, n = problem.m, problem.n
    args = (ops.x, ops.codes, ops.scales, ops.z, ops.bias_or_dummy(), ops.y)
    common = ops.common(problem)

    def grid(meta):
        return (triton.cdiv(m, meta["BLOCK_M"]) * triton.cdiv(n, meta["BLOCK_N"]),)

    if problem.tuned:
        tuned[grid](*args, **common)
        state.last["prefill"] = tuned.best_config
        return
    c = config or default_config(problem)
    _heur[grid({"BLOCK_M": c.block_m, "BLOCK_N": c.block_n})](
        *args, **common, BLOCK_M=c.block_m, BLOCK_N=c.block_n, BLOCK_K=c.block_k, num_warps=c.num_warps,
        num_stages=c.num_stages)
