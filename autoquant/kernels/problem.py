"""What every kernel path is asked: one matmul problem, its stored tensors, and the shared rules.

`MatmulProblem` describes `y = x @ dequant(W)^T` (sizes, format, device, alignments) so that each
path's `can_run(problem, config)` can answer from data alone, and the selector can say why a path
was turned down. `Operands` carries the tensors a launch needs, in the order the Triton kernels
take them. The rules that several paths share (scale groups a step must fit, the M bucket of the
tuning key, the split-K rule) live here once.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass

import torch
import triton

from autoquant.formats import QuantFormat
from autoquant.kernels.timing import cold_l2_bench

SMALL_M_MAX = 16  # M up to this runs a decode path (tokens are one 16-wide dot operand)
MAX_SPLIT_K = 8  # partial sums a row tile may have (the split-K workspace holds this many)
DEQUANT_MIN_M = 512  # from here on (tuned launches) W is dequantized first and a GEMM multiplies
SPLIT_MAX_N = 16384  # split-K only pays on layers too narrow to fill the GPU
# Tuning key of the decode and small-M kernels. stride_zg: 0 for symmetric formats (a fixed
# zero-point, compiled in), 1 with zero-points.
SMALL_KEY = ["N", "K", "GROUP", "M_BUCKET", "BITS", "HAS_BIAS", "stride_zg"]


def interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def m_bucket(m: int) -> int:
    """Autotuning key for the token count: the next power of two (capped)."""
    return min(1 << max(m - 1, 0).bit_length(), 4096)


@functools.cache
def sm_count(device: int | None) -> int:
    """Streaming multiprocessors of a CUDA device (index; None: the current one)."""
    return torch.cuda.get_device_properties(device).multi_processor_count


def num_sms() -> int:
    """SMs of the current device; 132 (an H100) where there is none (the interpreter's pruning)."""
    return sm_count(torch.cuda.current_device()) if torch.cuda.is_available() else 132


def min_block_k(bits: int) -> int:
    return 32 if bits == 4 else 16


def block_k_fits(block_k: int, group: int, bits: int) -> bool:
    """A BLOCK_K step must lie inside one scale group, and hold at least 16 bytes-worth
    of codes for a dot (int4: K/2 >= 16)."""
    return block_k >= min_block_k(bits) and group % block_k == 0


def fits_groups(sub: int, group: int, k: int, bits: int) -> bool:
    """Whether sub-blocks of `sub` inputs, each under one scale, fit scale groups of `group` (any
    sub-block fits a per-channel format's single group)."""
    return group == k or block_k_fits(sub, group, bits)


def split_k_pays(n: int, k: int, block_n: int, block_k: int, split_k: int, sms: int) -> bool:
    """Split only layers whose column tiles leave the GPU idle, and keep >= 2 steps a split."""
    tiles = triton.cdiv(n, block_n)
    return not (n > SPLIT_MAX_N or tiles * split_k > 4 * sms or tiles >= 2 * sms
                or triton.cdiv(k, block_k) < 2 * split_k)


def unique_or_fallback(kept: dict, fitting: list, group: int, bits: int, k: int) -> list:
    """A pruner's answer: the kept configs; for a shape smaller than every tile, one config that
    fits the groups (masks cover the rest); never one whose sub-blocks straddle scale groups,
    whose results would be wrong."""
    if kept:
        return list(kept.values())
    if fitting:
        return fitting[:1]
    raise ValueError(f"no kernel config fits scale groups of {group} ({bits}-bit, K = {k})")


# triton.heuristics shared by the Triton kernels
def even_k(a: dict) -> bool:
    return a["K"] % a["BLOCK_K"] == 0


def x_pairs(a: dict) -> bool:
    """x can be read as int32 pairs: even K and row stride, 4-byte aligned base."""
    return a["K"] % 2 == 0 and a["stride_xm"] % 2 == 0 and a["x_ptr"].data_ptr() % 4 == 0


def use_asm(a: dict) -> bool:
    """Packed PTX conversions on the GPU; the interpreter cannot run inline assembly."""
    return not interpreting()


@dataclass(frozen=True)
class MatmulProblem:
    """`y[m, n] = x[m, k] @ dequant(W)^T` as the paths see it; built by `MatmulProblem.of`."""

    m: int
    n: int
    k: int
    bits: int
    group: int  # inputs a scale (k for per-channel formats)
    symmetric: bool
    dtype: torch.dtype  # x's (and y's)
    device_type: str  # "cuda" or "cpu"
    capability: int  # the GPU's major compute capability; 0 off a GPU
    interpreting: bool  # Triton kernels run on the CPU under TRITON_INTERPRET=1
    tuned: bool  # no explicit config: autotuned on a GPU, default tiles under the interpreter
    words_aligned: bool  # codes readable as int32 words and x as int64 quads (decode stream)
    tma_aligned: bool  # 16-byte aligned rows and bases for TMA (the wgmma kernel)

    @property
    def triton_runs(self) -> bool:
        return self.device_type == "cuda" or self.interpreting

    @classmethod
    def of(cls, x2: torch.Tensor, codes: torch.Tensor, fmt: QuantFormat, n: int, k: int,
           tuned: bool) -> MatmulProblem:
        cuda = x2.is_cuda
        return cls(
            m=x2.shape[0], n=n, k=k, bits=fmt.bits, group=fmt.effective_group(k), symmetric=fmt.symmetric,
            dtype=x2.dtype, device_type=x2.device.type,
            capability=torch.cuda.get_device_capability(x2.device)[0] if cuda else 0,
            interpreting=interpreting(), tuned=tuned and not interpreting(),
            words_aligned=(k % (32 // fmt.bits) == 0 and codes.data_ptr() % 4 == 0 and x2.data_ptr() % 8 == 0
                           and (x2.shape[0] == 1 or x2.stride(0) % 4 == 0)),
            tma_aligned=(x2.stride(-1) == 1 and (x2.stride(0) * 2) % 16 == 0 and x2.data_ptr() % 16 == 0
                         and codes.is_contiguous() and codes.data_ptr() % 16 == 0 and codes.shape[0] % 8 == 0),
        )


@dataclass
class Operands:
    """The tensors of one launch, as the kernels take them: x [M, K] (rows contiguous), the stored
    codes and scales, the zero-point tensor with its (row, group) strides (stride 0 for a
    symmetric format's one fixed byte), the bias (or a dummy pointer) and y [M, N]."""

    format: QuantFormat
    x: torch.Tensor
    codes: torch.Tensor
    scales: torch.Tensor
    z: torch.Tensor
    stride_zn: int
    stride_zg: int
    zeros: torch.Tensor | None  # the stored zero-points (None: symmetric)
    bias: torch.Tensor | None
    y: torch.Tensor

    def common(self, problem: MatmulProblem) -> dict:
        """The scalar arguments every Triton kernel of the decode and small-M paths takes."""
        return {
            "M": problem.m, "N": problem.n, "K": problem.k, "GROUP": problem.group,
            "stride_xm": self.x.stride(0), "stride_cn": self.codes.stride(0), "stride_sn": self.scales.stride(0),
            "stride_zn": self.stride_zn, "stride_zg": self.stride_zg, "stride_ym": self.y.stride(0),
            "M_BUCKET": m_bucket(problem.m), "BITS": problem.bits, "HAS_BIAS": self.bias is not None,
        }

    def bias_or_dummy(self) -> torch.Tensor:
        """The bias pointer (any float dtype: read as fp32); y stands in where there is none."""
        return self.bias if self.bias is not None else self.y

    def split_k_args(self, workspace: torch.Tensor, locks: torch.Tensor) -> tuple:
        """The tensors of the split-K kernels: x, codes, scales, zero-points, bias, y, the fp32
        workspace for partial sums and the arrival counters."""
        return (self.x, self.codes, self.scales, self.z, self.bias_or_dummy(), self.y, workspace, locks)


def split_k_workspace(problem: MatmulProblem, explicit_split: bool, device: torch.device) -> torch.Tensor:
    """fp32 space for split-K partial sums: on layers narrow enough that the tuner may split, or
    where an explicit config does; empty otherwise."""
    size = MAX_SPLIT_K * problem.m * problem.n if problem.n <= SPLIT_MAX_N or explicit_split else 0
    return torch.empty(size, dtype=torch.float32, device=device)


def prune_configs(configs, named_args: dict, refit: Callable, keep: Callable) -> list:
    """triton.autotune's early_config_prune, as every path's pruner runs it: `refit(c, a)` gives the
    config (or a re-cut copy) whose sub-blocks each lie inside one scale group, or None; `keep(c, a)`
    whether the tuner should time it. Steps wider than the row are never timed."""
    a = named_args
    k, group, bits = a["K"], a["GROUP"], a["BITS"]
    kept, fitting = {}, []
    for c in configs:
        if (c := refit(c, a)) is None:
            continue
        fitting.append(c)
        if c.kwargs["BLOCK_K"] <= max(32, triton.next_power_of_2(k)) and keep(c, a):
            kept.setdefault((tuple(sorted(c.kwargs.items())), c.num_warps), c)
    return unique_or_fallback(kept, fitting, group, bits, k)


def _fits(c, a: dict):
    return c if fits_groups(c.kwargs["BLOCK_K"] // c.kwargs.get("NG", 1), a["GROUP"], a["K"], a["BITS"]) else None


def _split_tile_pays(c, a: dict) -> bool:
    bk, ng, group = c.kwargs["BLOCK_K"], c.kwargs.get("NG", 1), a["GROUP"]
    if ng > 1 and group != a["K"] and bk // ng != group:
        return False  # sub-blocks smaller than a group only add dots
    sk = c.kwargs["SPLIT_K"]
    return sk == 1 or split_k_pays(a["N"], a["K"], c.kwargs["BLOCK_N"], bk, sk, num_sms())


def prune_split_k_tiles(configs, named_args, **kwargs) -> list:
    """The pruner of the split-K tile kernels (the byte GEMV, the small-M tl.dot): configs
    ({BLOCK_N, BLOCK_K, SPLIT_K[, NG]}) whose NG sub-blocks each lie inside one scale group, split
    only where splitting pays."""
    return prune_configs(configs, {**named_args, **kwargs}, _fits, _split_tile_pays)


def autotuned(kernel, configs: list, prune: Callable):
    """triton.autotune as the paths use it: keyed by SMALL_KEY, timed with a cold L2, cached on disk."""
    return triton.autotune(configs=configs, key=SMALL_KEY, prune_configs_by={"early_config_prune": prune},
                           do_bench=cold_l2_bench, cache_results=True)(kernel)
