"""GPU timers the kernels' autotuners and the benchmarks share.

Three ways to time a launch, each for its own question:
  * `cold_l2_bench`: one launch with L2 flushed before it (the autotuners' `do_bench`);
  * `time_in_graph`: calls back to back in a CUDA graph over weight copies that overflow L2, as
    a served model's decode step runs them (profiles, graph picks, benchmarks);
  * `device_seconds`: triton's median timer, for the device's own ceilings.

A leaf of the kernel package: it imports torch and triton only, so `autoquant.hardware` can
import it without the kernels importing the hardware package back.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable

import torch
import triton


def device_seconds(fn: Callable[[], object], rep_ms: int = 25) -> float:
    """Median seconds of `fn` by triton's timer, after one untimed call (compile, autotune)."""
    fn()  # compile and autotune outside the timed region
    torch.cuda.synchronize()
    return triton.testing.do_bench(fn, warmup=5, rep=rep_ms, return_mode="median") * 1e-3


def time_in_graph(fns: list[Callable[[], object]], target_s: float = 0.015, replays: int = 7) -> float:
    """Seconds per call of `fns` run back to back inside a CUDA graph, median of replays.

    Pass one closure per copy of the weight, enough copies that together they exceed L2:
    each call then reads its weight from DRAM, as a decode step does, and the graph removes
    the launch's CPU overhead, as a served model's CUDA graph does."""
    for f in fns:  # compile, autotune
        f()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for f in fns:
        f()
    end.record()
    end.synchronize()
    one_pass = max(start.elapsed_time(end) * 1e-3, 1e-6)
    passes = max(1, min(int(target_s / one_pass), 4096 // len(fns)))

    def warm() -> None:
        for f in fns:
            f()

    def body() -> None:
        for _ in range(passes):
            warm()

    return graph_seconds(body, replays, warmup=warm, warmup_runs=1) / (passes * len(fns))


def graph_seconds(body: Callable[[], object], replays: int, warmup: Callable[[], object] | None = None,
                  warmup_runs: int = 2) -> float:
    """Median seconds of one replay of `body` captured as a CUDA graph.

    Warm-up runs on a side stream first, as graph capture wants (allocator pools, autotuning)."""
    warm = warmup or body
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(warmup_runs):
            warm()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        body()
    graph.replay()
    torch.cuda.synchronize()
    times = []
    for _ in range(replays):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        graph.replay()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) * 1e-3)
    del graph
    return statistics.median(times)


L2_EVICT_BYTES = 256 * 2**20  # weight copies per timing: together at least this (H100 L2: 50 MB)


def weight_copies(nbytes: int, max_copies: int = 64) -> int:
    return max(1, min(max_copies, -(-L2_EVICT_BYTES // max(nbytes, 1))))


def weight_clones(w, n: int) -> list:
    """w (a tensor or a QuantizedWeight) and n - 1 independent copies of it."""
    return [w] + [w.clone() for _ in range(n - 1)]


_FLUSH: dict[torch.device, torch.Tensor] = {}  # one eviction buffer a device


def cold_l2_bench(kernel_call, quantiles, reps: int = 15):
    """Cold-L2 time of one launch: reading a 512 MB buffer before each run evicts the weight (as
    in decoding, where each layer's weight is read once per token) and, lasting ~0.2 ms, hides
    the launch's CPU overhead, which would otherwise be timed for small layers. A read, not a
    memset: a memset leaves L2 full of dirty lines whose write-backs would compete with the
    kernel's reads and rank configs differently from a decode step (seen on the H100)."""
    dev = torch.device("cuda", torch.cuda.current_device())
    flush = _FLUSH.get(dev)
    if flush is None:
        flush = _FLUSH[dev] = torch.zeros(128 * 2**20, dtype=torch.float32, device=dev)
    kernel_call()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        flush.sum()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        kernel_call()
        end.record()
        times.append((start, end))
    torch.cuda.synchronize()
    ms = sorted(a.elapsed_time(b) for a, b in times)
    return [ms[min(int(q * len(ms)), len(ms) - 1)] for q in quantiles]
