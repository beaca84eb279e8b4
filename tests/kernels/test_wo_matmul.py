"""The Triton kernels against a float64 reference, on every format and awkward shapes.

Each case draws fresh random inputs and poisons the output with NaN first, so an element
the kernel never writes fails the check. Runs under the interpreter on the CPU (CI).
"""

from __future__ import annotations

import kernel_env  # interpreter setup before `kernels` is imported
import pytest
import torch

from autoquant.formats import QuantFormat, all_formats
from autoquant.quant import dequantize, quantize
from autoquant.kernels import (
    ByteGemvConfig, DotConfig, LaunchState, MatmulProblem, StreamConfig, TiledConfig, decode_pdl, wo_matmul,
)
from autoquant.kernels import decode_stream, graph_pick, prefill_tiled, selector, small_m_dot
from autoquant.kernels.problem import DEQUANT_MIN_M, fits_groups, m_bucket, prune_split_k_tiles
from autoquant.kernels.small_m_dot import dot_rows

DEVICE = kernel_env.DEVICE
INT_FORMATS = [f for f in all_formats() if not f.is_float]
# fp16 output rounding plus fp16 rounding of each dequantized weight; bf16 has 3 fewer bits.
TOL = {torch.float16: 2e-3, torch.bfloat16: 1.6e-2}
_gen = torch.Generator().manual_seed(1234)


def _rand(*shape: int, dtype=torch.float32) -> torch.Tensor:
    return torch.randn(*shape, generator=_gen).to(dtype)


def _default_config(x: torch.Tensor, codes: torch.Tensor, fmt: QuantFormat, n: int, k: int):
    """The config the interpreter would launch this problem with (on a GPU: skips autotuning)."""
    problem = MatmulProblem.of(x, codes, fmt, n, k, tuned=False)
    return selector.choose(problem).default_config(problem)


def _check(fmt: QuantFormat, m: int, n: int, k: int, dtype: torch.dtype, bias: bool = False,
           config=None, pick_config: bool = True) -> None:
    qw = quantize(_rand(n, k) * 0.05, fmt).to(DEVICE)
    x = _rand(m, k, dtype=dtype).to(DEVICE)
    b = _rand(n, dtype=dtype).to(DEVICE) if bias else None
    out = torch.full((m, n), float("nan"), dtype=dtype, device=DEVICE)
    if config is None and pick_config and DEVICE == "cuda":  # on a GPU, skip autotuning every tiny case (compile time)
        config = _default_config(x, qw.codes, fmt, n, k)
    y = wo_matmul(x, qw, b, config=config, out=out)
    rel = kernel_env.relative_error(y, x, qw, b)
    assert rel < TOL[dtype], f"{fmt} M={m} N={n} K={k} {dtype}: relative error {rel:.2e}"


@pytest.mark.parametrize("fmt", INT_FORMATS, ids=str)
@pytest.mark.parametrize("m", [1, 3, 17])
def test_every_format_fp16(fmt: QuantFormat, m: int) -> None:
    # N and K multiples of no block; K odd (a padding nibble for int4) and over one group.
    _check(fmt, m, n=37, k=161, dtype=torch.float16)


@pytest.mark.parametrize("fmt", INT_FORMATS, ids=str)
def test_every_format_decode_word_kernel(fmt: QuantFormat) -> None:
    # M = 1 with K a multiple of 8: the word GEMV (codes and x read as int32)
    _check(fmt, 1, n=37, k=320, dtype=torch.float16, bias=True)


@pytest.mark.parametrize("fmt", ["int4-g32-asym", "int4-pc-sym", "int8-g64-asym", "int8-pc-sym"])
def test_many_tokens_dequantize_then_matmul(fmt: str) -> None:
    # M >= DEQUANT_MIN_M without an explicit config: W dequantized by a kernel, then torch.mm
    _check(QuantFormat.parse(fmt), DEQUANT_MIN_M, n=37, k=161, dtype=torch.float16, bias=True,
           pick_config=False)


@pytest.mark.parametrize("offset", [1, 2])  # 2 or 4 bytes: x is read as 8-byte quads by the word kernel
def test_decode_misaligned_x_takes_the_byte_kernel(offset: int) -> None:
    fmt = QuantFormat.parse("int4-g32-asym")
    qw = quantize(_rand(21, 128), fmt).to(DEVICE)
    buf = _rand(128 + offset, dtype=torch.float16).to(DEVICE)
    x = buf[offset:].view(1, 128)
    aligned = MatmulProblem.of(buf[:128].view(1, 128), qw.codes, fmt, 21, 128, tuned=False)
    misaligned = MatmulProblem.of(x, qw.codes, fmt, 21, 128, tuned=False)
    assert aligned.words_aligned and selector.choose(aligned) is decode_stream
    assert not misaligned.words_aligned and selector.choose(misaligned).NAME == "decode bytes"
    ref = x.double().cpu() @ dequantize(qw.to("cpu"), torch.float64).t()
    y = wo_matmul(x, qw)
    assert ((y.double().cpu() - ref).norm() / ref.norm()) < 2e-3


@pytest.mark.parametrize("fmt", ["int4-g128-asym", "int4-pc-sym", "int8-pc-sym", "int8-g32-asym"])
@pytest.mark.parametrize("m", [1, 17])
def test_bf16(fmt: str, m: int) -> None:
    _check(QuantFormat.parse(fmt), m, n=45, k=200, dtype=torch.bfloat16, bias=True)


@pytest.mark.parametrize(
    "fmt,m,config",
    [
        ("int4-g64-asym", 3, DotConfig(block_n=16, block_k=64, split_k=3)),  # tl.dot, last split short
        ("int8-pc-sym", 1, StreamConfig(block_n=32, block_k=32, split_k=4, stages=2)),
        ("int4-g64-sym", 1, StreamConfig(block_n=16, block_k=64, split_k=2, stages=1)),  # prefetch 1 step
        ("int4-pc-asym", 1, StreamConfig(block_n=16, block_k=128, split_k=1, stages=2)),  # prefetch 2 steps
        ("int4-g32-asym", 1, StreamConfig(block_n=16, block_k=128, split_k=2, stages=1, groups_per_step=4)),
        ("int8-g64-sym", 1, StreamConfig(block_n=32, block_k=256, split_k=1, stages=2, groups_per_step=4)),
        # K = 384 is no multiple of 256: the last step is partial with whole groups a sub-block
        ("int4-g64-asym", 1, StreamConfig(block_n=8, block_k=256, programs=5, stages=2, groups_per_step=4)),
        ("int4-g64-asym", 1, ByteGemvConfig(block_n=16, block_k=64, split_k=2)),  # the byte GEMV, asked for
        ("int8-pc-sym", 1, ByteGemvConfig(block_n=32, block_k=128, split_k=3)),
        ("int4-g128-asym", 2, StreamConfig(block_n=16, block_k=128, split_k=3, stages=2)),  # two rows
        ("int8-g32-sym", 2, StreamConfig(block_n=8, block_k=64, programs=7, groups_per_step=2, stages=2)),
        ("int4-g32-sym", 4, StreamConfig(block_n=16, block_k=128, programs=3, groups_per_step=4, stages=2)),
        ("int4-pc-asym", 16, DotConfig(block_n=64, block_k=128, split_k=2)),
        ("int8-g64-asym", 5, DotConfig(block_n=32, block_k=64, split_k=2, block_m=8)),  # x tile of 8 rows
        ("int4-g32-sym", 4, DotConfig(block_n=16, block_k=32, split_k=2, block_m=4)),
        ("int4-g32-sym", 17, TiledConfig(block_m=16, block_n=32, block_k=32, num_stages=3)),
        ("int8-g128-asym", 40, TiledConfig(block_m=32, block_n=16, block_k=128, num_stages=3)),
        # tl.dot kernel, two scale groups a step (each with its own scale and zero-point)
        # (two whole groups a step: both scales, and both zero-points, read as one word a row)
        ("int4-g64-asym", 16, DotConfig(block_n=32, block_k=128, split_k=2, groups_per_step=2)),
        ("int4-g64-sym", 11, DotConfig(block_n=16, block_k=128, split_k=3, groups_per_step=2)),
        ("int8-g32-sym", 9, DotConfig(block_n=16, block_k=64, groups_per_step=2)),
        ("int4-g32-asym", 12, DotConfig(block_n=16, block_k=128, split_k=2, groups_per_step=4)),
        # K = 384: the last step's second sub-block lies past K (masked, scale index clamped)
        ("int4-pc-sym", 6, DotConfig(block_n=32, block_k=256, groups_per_step=2, block_m=8)),
    ],
    ids=str,
)
def test_configs(fmt: str, m: int, config) -> None:
    """Split-K / stream partitions (with their arrival counters) and tile shapes other than the default."""
    _check(QuantFormat.parse(fmt), m, n=70, k=384, dtype=torch.float16, bias=True, config=config)


@pytest.mark.parametrize("ctas", [1, 2, 3, 5, 7, 11, 24])
def test_decode_stream_any_number_of_programs(ctas: int) -> None:
    # 70 rows in tiles of 16 (the last partial), 6 K steps: programs that cover several whole
    # tiles, one whole tile each (5), tiles shared by up to 4 programs, programs with nothing to
    # do (24 > 5 tiles x 6 / 2)
    cfg = StreamConfig(block_n=16, block_k=64, programs=ctas, stages=1)
    _check(QuantFormat.parse("int4-g64-asym"), 1, n=70, k=384, dtype=torch.float16, bias=True, config=cfg)


def test_stream_parts() -> None:
    stream_parts = decode_stream.stream_parts
    # 4 row tiles x 6 steps = 24 steps: 5 programs take 5 each; a tile is then shared by at most 2
    assert stream_parts(64, 384, 16, 64, 5) == (5, 2)
    # one step a program: 6 programs share every tile
    assert stream_parts(64, 384, 16, 64, 24) == (24, 6)
    # whole tiles a program (4 programs for 4 tiles, or 2 for 2 each): nothing shared
    assert stream_parts(64, 384, 16, 64, 4) == (4, 1)
    assert stream_parts(64, 384, 16, 64, 2) == (2, 1)
    # more programs than steps: only the steps' worth get work
    assert stream_parts(64, 384, 16, 64, 100)[0] == 24


def test_whole_tile_shares() -> None:
    from autoquant.kernels.decode_stream import WHOLE_TILES_MAX_K, prune, stream_parts, stream_programs, tuned_one_row

    # OCC = -j: one program a j whole row tiles, so no tile is shared (70 rows = 5 tiles of 16)
    assert stream_parts(70, 384, 16, 64, stream_programs(70, 16, -1, 132)) == (5, 1)
    assert stream_parts(64, 384, 16, 64, stream_programs(64, 16, -2, 132)) == (2, 1)
    assert stream_programs(70, 16, 4, 132) == 528  # OCC > 0: programs a SM
    # the tuner is offered them only up to WHOLE_TILES_MAX_K inputs, and j only where it divides
    # the tiles (5 tiles in 3 programs would share one)
    def occ(n: int, k: int) -> set[int]:
        cfgs = prune(tuned_one_row.configs, {"N": n, "K": k, "GROUP": 128, "BITS": 4})
        return {c.kwargs["OCC"] for c in cfgs if c.kwargs["BLOCK_N"] == 16}

    assert {-1, -2, -4} <= occ(14336, WHOLE_TILES_MAX_K)
    assert min(occ(14336, 2 * WHOLE_TILES_MAX_K)) > 0
    assert {-2, -4}.isdisjoint(occ(16 * 5, WHOLE_TILES_MAX_K)) and -1 in occ(16 * 5, WHOLE_TILES_MAX_K)


def test_explicit_config_must_fit_the_groups() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        _check(QuantFormat.parse("int4-g32-asym"), 1, n=16, k=256, dtype=torch.float16,
               config=StreamConfig(block_n=16, block_k=128, groups_per_step=1))
    with pytest.raises(ValueError, match="block_m 4 for 5 tokens"):
        _check(QuantFormat.parse("int4-g32-asym"), 5, n=16, k=256, dtype=torch.float16,
               config=DotConfig(block_n=16, block_k=32, block_m=4))
    with pytest.raises(ValueError, match="1, 2 or 4 scale groups a step"):
        _check(QuantFormat.parse("int4-g32-asym"), 5, n=16, k=384, dtype=torch.float16,
               config=DotConfig(block_n=16, block_k=96, block_m=8, groups_per_step=3))
    with pytest.raises(ValueError, match="split a row tile"):
        _check(QuantFormat.parse("int4-g32-asym"), 1, n=16, k=1024, dtype=torch.float16,
               config=StreamConfig(block_n=16, block_k=32, programs=32))
    with pytest.raises(ValueError, match="the config is a StreamConfig"):  # a path for 1-16 tokens at 17
        _check(QuantFormat.parse("int4-g32-asym"), 17, n=16, k=256, dtype=torch.float16,
               config=StreamConfig(block_n=16, block_k=32))
    with pytest.raises(TypeError, match="config must be one of"):
        _check(QuantFormat.parse("int4-g32-asym"), 1, n=16, k=256, dtype=torch.float16, config=(16, 32))


def test_split_k_counters_reset_between_launches() -> None:
    cfg = DotConfig(block_n=16, block_k=32, split_k=4)
    for _ in range(2):
        _check(QuantFormat.parse("int4-g32-asym"), 2, n=33, k=256, dtype=torch.float16, config=cfg)


def test_leading_dims_and_bias() -> None:
    fmt = QuantFormat.parse("int4-g32-asym")
    qw = quantize(_rand(24, 64), fmt).to(DEVICE)
    x = _rand(2, 3, 64, dtype=torch.float16).to(DEVICE)
    b = _rand(24, dtype=torch.float16).to(DEVICE)
    y = wo_matmul(x, qw, b)
    assert y.shape == (2, 3, 24)
    ref = x.double().cpu() @ dequantize(qw.to("cpu"), torch.float64).t() + b.double().cpu()
    assert ((y.double().cpu() - ref).norm() / ref.norm()) < 2e-3


def test_rejects_bad_inputs() -> None:
    qw = quantize(_rand(8, 64), QuantFormat.parse("int4-g32-sym")).to(DEVICE)
    with pytest.raises(TypeError, match="fp16 or bf16"):
        wo_matmul(_rand(1, 64).to(DEVICE), qw)
    with pytest.raises(ValueError, match="features"):
        wo_matmul(_rand(1, 32, dtype=torch.float16).to(DEVICE), qw)
    odd = quantize(_rand(8, 48), QuantFormat("int4", 24, True)).to(DEVICE)
    with pytest.raises(ValueError, match="group size 24"):
        wo_matmul(_rand(1, 48, dtype=torch.float16).to(DEVICE), odd)


def test_m_bucket() -> None:
    assert [m_bucket(m) for m in (1, 2, 3, 16, 17, 2048, 9000)] == [1, 2, 4, 16, 32, 2048, 4096]
    # the tl.dot kernel's x tile: the fewest rows that hold the bucket
    assert [dot_rows(m_bucket(m)) for m in (2, 3, 4, 5, 8, 9, 16)] == [4, 4, 4, 8, 8, 16, 16]


def test_pruning_keeps_blocks_inside_groups() -> None:
    args = dict(N=4096, K=4096, GROUP=32, BITS=4, M=1)
    dot_configs = small_m_dot.tuned.configs
    kept = prune_split_k_tiles(dot_configs, args)
    # a step of NG sub-blocks: each sub-block one whole group (NG > 1), or inside one
    assert kept and all(c.kwargs["BLOCK_K"] // c.kwargs["NG"] == 32 for c in kept)
    assert any(c.kwargs["NG"] == 4 for c in kept)
    g128 = prune_split_k_tiles(dot_configs, dict(args, GROUP=128))
    assert all(c.kwargs["NG"] == 1 or c.kwargs["BLOCK_K"] == 128 * c.kwargs["NG"] for c in g128)
    per_channel = prune_split_k_tiles(dot_configs, dict(args, GROUP=4096))  # any sub-block lies in the group
    assert {c.kwargs["NG"] for c in per_channel} == {1, 2, 4}
    wide = prune_split_k_tiles(dot_configs, dict(args, N=128256, GROUP=128))
    assert all(c.kwargs["SPLIT_K"] == 1 for c in wide)  # no split on layers that fill the GPU
    narrow = prune_split_k_tiles(dot_configs, dict(args, N=1024, GROUP=128))
    assert any(c.kwargs["SPLIT_K"] > 1 for c in narrow)
    large = prefill_tiled.prune(prefill_tiled.tuned.configs, dict(args, GROUP=64, M=2048))
    assert large and all(64 % c.kwargs["BLOCK_K"] == 0 for c in large)


def _decode_tuner(m: int, bits: int):
    """The autotuner wo_matmul launches for M tokens (the word kernels where aligned), and its pruner."""
    if m == 1:
        return decode_stream.tuned_one_row, decode_stream.prune
    if bits == 4 and m <= decode_stream.ROWS_MAX_M:
        return decode_stream.tuned_rows, decode_stream.prune
    return small_m_dot.tuned, prune_split_k_tiles


@pytest.mark.parametrize("n,k", [(4096, 4096), (1024, 4096), (4096, 14336), (128256, 4096), (37, 320), (96, 64)])
def test_decode_tuners_only_run_configs_inside_groups(n: int, k: int) -> None:
    # Each of a config's sub-blocks takes one scale: one straddling two groups gives wrong numbers
    # (relative error 0.2-0.5). The word kernels' tiles have sub-blocks of 64-128 inputs; groups of
    # 32 (and 64) once fell back to such a tile untuned, and only GPU users saw it.
    for fmt in INT_FORMATS:
        group = fmt.effective_group(k)
        if k % group:
            continue
        for m in (1, 2, 3, 4, 16):
            tuner, prune = _decode_tuner(m, fmt.bits)
            kept = prune(tuner.configs, dict(N=n, K=k, GROUP=group, BITS=fmt.bits, BLOCK_M=m_bucket(m)))
            assert kept, f"{fmt} M={m}"
            for c in kept:
                sub = c.kwargs["BLOCK_K"] // c.kwargs.get("NG", 1)
                assert fits_groups(sub, group, k, fmt.bits), f"{fmt} M={m} {c}"
            if m == 1 and n >= 1024:  # groups of 32 are tuned over as many tiles as groups of 128
                assert len(kept) >= 100, f"{fmt}: {len(kept)} configs"
        for m in (17, 32, 64, 256):  # the tl.dot kernel for more tokens (below the dequantize pass)
            kept = prefill_tiled.prune(prefill_tiled.tuned.configs, dict(N=n, K=k, GROUP=group, BITS=fmt.bits, M=m))
            assert kept and all(fits_groups(c.kwargs["BLOCK_K"], group, k, fmt.bits) for c in kept), f"{fmt} M={m}"


def test_pruning_never_keeps_a_config_across_groups() -> None:
    # nothing fits 4-bit groups of 16 (16 codes are 8 bytes; a dot needs 16): an error, not a guess
    with pytest.raises(ValueError, match="no kernel config fits"):
        prune_split_k_tiles(small_m_dot.tuned.configs, dict(N=256, K=256, GROUP=16, BITS=4, BLOCK_M=4))
    with pytest.raises(ValueError, match="no kernel config fits"):
        prefill_tiled.prune(prefill_tiled.tuned.configs, dict(N=256, K=256, GROUP=16, BITS=4, M=64))


@pytest.mark.gpu  # the autotuned launch (the interpreter runs default configs)
@pytest.mark.parametrize("fmt,m", [("int4-g32-asym", 1), ("int8-g32-sym", 1), ("int4-g64-sym", 2), ("int4-g32-asym", 4),
                                   ("int4-g32-sym", 17)])
def test_tuned_decode_small_groups(fmt: str, m: int) -> None:
    _check(QuantFormat.parse(fmt), m, n=512, k=1024, dtype=torch.float16, pick_config=False)


def _replay_checked(graph: torch.cuda.CUDAGraph, qws, xs) -> None:
    """Replay a captured chain into NaN-poisoned outputs and check each against float64, the
    next call's input being what this one wrote."""
    for y in xs[1:]:
        y.fill_(float("nan"))
    graph.replay()
    torch.cuda.synchronize()
    x = xs[0].double().cpu()
    for i, (qw, y) in enumerate(zip(qws, xs[1:])):
        ref = x @ dequantize(qw.to("cpu"), torch.float64).t()
        got = y.double().cpu()
        assert not got.isnan().any(), f"call {i}: outputs never written"
        rel = ((got - ref).norm() / ref.norm()).item()
        assert rel < 4e-3, f"call {i}: relative error {rel:.2e}"
        x = got.half().double()


def _captured(calls) -> torch.cuda.CUDAGraph:
    """`calls()` captured in a CUDA graph on a side stream (not run)."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.stream(stream), torch.cuda.graph(graph, stream=stream):
        calls()
    return graph


SM90 = pytest.mark.skipif(DEVICE != "cuda" or torch.cuda.get_device_capability()[0] < 9,
                          reason="programmatic dependent launch: CUDA graphs on sm_90+")


@pytest.mark.gpu
@SM90
@pytest.mark.parametrize("fmt,m", [("int4-g128-sym", 1), ("int4-g128-asym", 1), ("int8-pc-sym", 1),
                                   ("int4-g128-sym", 2), ("int4-g128-asym", 2)])
@pytest.mark.parametrize("many", [True, False])
def test_decode_chain_in_a_graph_with_dependent_launch(fmt: str, m: int, many: bool) -> None:
    # Captured back to back, each decode call with enough programs launches with PDL and loads
    # its first weights before the previous call ends; every call must still read its x only
    # after that call wrote it, and write all of its output. Chained: call i reads call i-1's
    # output. With few programs a SM (many=False) the launches must not use PDL.
    f, n, k = QuantFormat.parse(fmt), 1024, 1024
    state = LaunchState()
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    programs = (state.pdl_min_programs_per_sm + 1) * sms if many else sms
    config = StreamConfig(block_n=4, block_k=256, num_warps=1, stages=1, groups_per_step=2, programs=programs)
    qws = [quantize(_rand(n, k) * 0.05, f).to(DEVICE) for _ in range(4)]
    xs = [_rand(m, k, dtype=torch.float16).to(DEVICE)] + [
        torch.empty(m, n, dtype=torch.float16, device=DEVICE) for _ in qws]
    def chain() -> None:
        for qw, x, y in zip(qws, xs, xs[1:]):
            wo_matmul(x, qw, config=config, out=y, state=state)

    chain()  # eagerly first: compiles the PDL variant
    graph = _captured(chain)
    assert state.last_decode_pdl() == many
    _replay_checked(graph, qws, xs)


@pytest.mark.gpu
@SM90
def test_decode_tuned_launch_in_a_graph() -> None:
    # The autotuned path: PDL in capture follows the eager launch's tuned config, whose PDL
    # variant that launch compiled (nothing may compile while a stream captures).
    f, n, k = QuantFormat.parse("int4-g128-sym"), 4096, 4096
    qw = quantize(_rand(n, k) * 0.05, f).to(DEVICE)
    x = _rand(1, k, dtype=torch.float16).to(DEVICE)
    y = torch.empty(1, n, dtype=torch.float16, device=DEVICE)
    wo_matmul(x, qw, out=y)
    graph = _captured(lambda: (wo_matmul(x, qw, out=y), wo_matmul(x, qw, out=y)))
    y.fill_(float("nan"))
    graph.replay()
    torch.cuda.synchronize()
    ref = x.double().cpu() @ dequantize(qw.to("cpu"), torch.float64).t()
    rel = ((y.double().cpu() - ref).norm() / ref.norm()).item()
    assert rel < 4e-3


def _dot_chain(fmt: str, m: int, n: int, state: LaunchState):
    """Four n x n weights and a chain of tuned calls, call i reading call i-1's output; returns
    (qws, xs, chain)."""
    k = n
    f = QuantFormat.parse(fmt)
    qws = [quantize(_rand(n, k) * 0.05, f).to(DEVICE) for _ in range(4)]
    xs = [_rand(m, k, dtype=torch.float16).to(DEVICE)] + [
        torch.empty(m, n, dtype=torch.float16, device=DEVICE) for _ in qws]

    def chain() -> None:
        for qw, x, y in zip(qws, xs, xs[1:]):
            wo_matmul(x, qw, out=y, state=state)
    return qws, xs, chain


def _forced_pick(pdl: bool) -> tuple[list, object]:
    """A graph pick that takes the last candidate config with `pdl`, and the list that collects
    each call's candidates."""
    picks = []

    def forced(key_parts, configs, launch, weight):
        picks.append(configs)
        return {"config": graph_pick.config_record(configs[-1]), "pdl": pdl, "timed": []}

    return picks, forced


@pytest.mark.gpu
@SM90
@pytest.mark.parametrize("fmt", ["int4-g128-sym", "int4-g128-asym", "int8-pc-sym"])
@pytest.mark.parametrize("pdl", [True, False])
def test_dot_chain_in_a_graph_follows_the_graph_pick(fmt: str, pdl: bool) -> None:
    # 2 < M <= 16: the eager launch picks config and PDL by timing in a graph (graph_pick); the
    # pick is forced here so both kernels run: with PDL each call may start before the previous
    # one ends, yet must read x only after it was written, and write every output.
    picks, forced = _forced_pick(pdl)
    state = LaunchState(graph_pick=forced)
    qws, xs, chain = _dot_chain(fmt, 16, 2048, state)
    chain()
    assert len(picks) == 1 and len(state.dot_pick) == 1  # one problem: picked once
    graph = _captured(chain)
    assert state.last_decode_pdl() is pdl
    assert str(state.last["decode"]) == str(picks[0][-1])
    _replay_checked(graph, qws, xs)


@pytest.mark.gpu
@SM90
def test_dot_graph_pick_times_and_caches() -> None:
    # The real pick: it times the tuner's best few with and without PDL and keeps the fastest;
    # a second process (a fresh state) reads the same choice from disk.
    state = LaunchState()
    qws, xs, chain = _dot_chain("int4-g128-asym", 8, 4096, state)
    chain()
    (config, pdl), = state.dot_pick.values()
    state = LaunchState()
    qws, xs, chain = _dot_chain("int4-g128-asym", 8, 4096, state)
    chain()
    assert [(str(c), p) for c, p in state.dot_pick.values()] == [(str(config), pdl)]
    graph = _captured(chain)
    _replay_checked(graph, qws, xs)


@pytest.mark.gpu
@SM90
@pytest.mark.parametrize("fmt", ["int4-g128-asym", "int4-g32-asym", "int8-pc-sym"])
@pytest.mark.parametrize("pdl", [True, False])
def test_word_chain_in_a_graph_follows_the_pdl_pick(fmt: str, pdl: bool) -> None:
    # M = 1, tuned: PDL in capture is what the eager launch's graph-timed pick chose for the
    # tuner's config (forced here, and the programs rule lifted, so both variants run chained).
    picks, forced = _forced_pick(pdl)
    state = LaunchState(pdl_min_programs_per_sm=0, graph_pick=forced)
    qws, xs, chain = _dot_chain(fmt, 1, 2048, state)
    chain()
    assert len(picks) == 1 and len(state.pdl_chain) == 1  # one problem: picked once
    assert [str(c) for c in picks[0]] == [str(state.last["decode"])]  # the tuner's config only
    graph = _captured(chain)
    assert state.last_decode_pdl() is pdl
    _replay_checked(graph, qws, xs)


@pytest.mark.gpu
@SM90
def test_word_pdl_pick_times_and_caches() -> None:
    # The real pick for M = 1: timed with and without PDL; a second process (a fresh state)
    # reads the same choice from disk, and the graph it captures replays correctly.
    state = LaunchState(pdl_min_programs_per_sm=0)
    qws, xs, chain = _dot_chain("int4-g128-asym", 1, 4096, state)
    chain()
    (first,) = state.pdl_chain.values()
    timed = []
    state = LaunchState(pdl_min_programs_per_sm=0,
                        graph_pick=lambda *a: (timed.append(r := graph_pick.pick(*a)), r)[1])
    qws, xs, chain = _dot_chain("int4-g128-asym", 1, 4096, state)
    chain()
    assert list(state.pdl_chain.values()) == [first]
    assert len(timed) == 1 and {p for _, p, _ in timed[0]["timed"]} == {True, False}
    assert timed[0]["pdl"] is first
    graph = _captured(chain)
    assert state.last_decode_pdl() is first
    _replay_checked(graph, qws, xs)


def test_decode_pdl_switch_restores_and_never_applies_off_a_gpu() -> None:
    state = LaunchState()
    before = state.decode_pdl
    with decode_pdl(not before, state):
        assert state.decode_pdl is (not before)
    assert state.decode_pdl is before
    with pytest.raises(RuntimeError), decode_pdl(False, state):
        raise RuntimeError("restored on errors too")
    assert state.decode_pdl is before
    assert not state.pdl_capable(torch.zeros(1, 8, dtype=torch.float16), False)  # a CPU tensor: never
