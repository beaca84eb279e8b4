"""Timing on the local GPU: kernels, the device's ceilings, and whole forwards.

Layer times run inside a CUDA graph over enough copies of the weight to overflow L2, so each
call reads its weight from DRAM (as a decode step does) and no CPU launch overhead is timed
(as in a served model's CUDA graph). Whole forwards are CUDA graphs too: one decode step
(static KV cache) or one prompt.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import platform
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import nn

from autoquant.formats import QuantFormat
from autoquant.hardware.base import RUNTIMES, RestCalibration, check_runtime
from autoquant.hardware.profile import DEFAULT_BUCKETS, HardwareProfile, shape_key
from autoquant.hardware.specs import match_spec
from autoquant.kernels import wo_matmul
from autoquant.kernels.timing import device_seconds, graph_seconds, time_in_graph, weight_clones, weight_copies
from autoquant.memory import ModelShape, kv_cache_bytes
from autoquant.quant import quantize

Progress = Callable[[str], None]


# ---- the device -------------------------------------------------------------------
def gpu_identity() -> dict:
    import triton

    dev = torch.cuda.current_device()
    props = torch.cuda.get_device_properties(dev)
    name = torch.cuda.get_device_name(dev)
    spec = match_spec(name)
    driver = "unknown"
    try:
        driver = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=20,
        ).stdout.strip().splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        pass
    return {
        "name": name,
        "spec": spec.name if spec else None,
        "memory_bytes": int(props.total_memory),
        "sms": int(props.multi_processor_count),
        "capability": f"{props.major}.{props.minor}",
        "driver": driver,
        "cuda": torch.version.cuda,
        "torch": torch.__version__,
        "triton": triton.__version__,
        "python": platform.python_version(),
    }


def measure_bandwidth(nbytes: int = 2 * 2**30) -> float:
    """DRAM bytes/s of a device-to-device copy, counting bytes read plus bytes written."""
    src = torch.empty(nbytes // 2, dtype=torch.int16, device="cuda").random_()
    dst = torch.empty_like(src)
    t = device_seconds(lambda: dst.copy_(src), rep_ms=200)
    return 2 * nbytes / t


def measure_fp16_flops(n: int = 8192) -> float:
    a = torch.randn(n, n, dtype=torch.float16, device="cuda")
    b = torch.randn(n, n, dtype=torch.float16, device="cuda")
    t = device_seconds(lambda: a @ b, rep_ms=200)
    return 2 * n**3 / t


# ---- one layer ------------------------------------------------------------------------
@dataclass
class LayerBench:
    """One weight [out, in] in one format on the GPU, ready to time at any token count."""

    out_features: int
    in_features: int
    fmt: QuantFormat
    weight: torch.Tensor | object  # fp16/bf16 tensor, or a QuantizedWeight

    @classmethod
    def create(cls, out_features: int, in_features: int, fmt: QuantFormat, w16: torch.Tensor | None = None) -> LayerBench:
        if w16 is None:
            w16 = torch.randn(out_features, in_features, dtype=torch.float16, device="cuda") * 0.02
        if fmt.is_float:
            dtype = torch.float16 if fmt.dtype == "fp16" else torch.bfloat16
            return cls(out_features, in_features, fmt, w16.to(dtype))
        return cls(out_features, in_features, fmt, quantize(w16, fmt))

    @property
    def act_dtype(self) -> torch.dtype:
        return torch.bfloat16 if self.fmt.dtype == "bf16" else torch.float16

    @property
    def nbytes(self) -> int:
        return self.fmt.storage_bytes(self.out_features, self.in_features)

    def copies(self, n: int) -> list:
        """n independent weights in this format (the first is this one)."""
        return weight_clones(self.weight, n)

    def fns(self, tokens: int, weights: list) -> list[Callable[[], torch.Tensor]]:
        x = torch.randn(tokens, self.in_features, dtype=self.act_dtype, device="cuda")
        if self.fmt.is_float:
            return [lambda w=w: torch.nn.functional.linear(x, w) for w in weights]
        return [lambda w=w: wo_matmul(x, w) for w in weights]

    def seconds(self, tokens: int, weights: list | None = None) -> float:
        """Per call, in a CUDA graph over enough weight copies to miss L2 (see `time_in_graph`)."""
        weights = weights or self.copies(weight_copies(self.nbytes))
        return time_in_graph(self.fns(tokens, weights))


def profile_layers(
    shapes: Iterable[tuple[int, int]],
    formats: Iterable[QuantFormat],
    buckets: Iterable[int] = DEFAULT_BUCKETS,
    progress: Progress | None = None,
) -> dict[str, dict[str, list[float]]]:
    """seconds[shape_key][format] per bucket, for every shape x format x bucket."""
    shapes, formats, buckets = list(dict.fromkeys(shapes)), list(formats), list(buckets)
    out: dict[str, dict[str, list[float]]] = {}
    for n, k in shapes:
        w16 = torch.randn(n, k, dtype=torch.float16, device="cuda") * 0.02
        per_fmt = out.setdefault(shape_key(n, k), {})
        for fmt in formats:
            bench = LayerBench.create(n, k, fmt, w16)
            weights = bench.copies(weight_copies(bench.nbytes))
            per_fmt[str(fmt)] = [bench.seconds(t, weights) for t in buckets]
            del weights
            if progress:
                progress(f"{n}x{k} {fmt}")
            del bench
        del w16
        torch.cuda.empty_cache()
    return out


# ---- whole forwards -------------------------------------------------------------------
def build_model(config, dtype: torch.dtype = torch.float16) -> nn.Module:
    """A causal LM from its config with random weights, on the GPU: timing needs no real weights."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    return model.eval()


def eager_seconds(fn: Callable[[], object], replays: int, warmup_runs: int = 2) -> float:
    """Median seconds of `fn` launched op by op from Python (CPU launch cost included), as
    `model.generate` without a compiled or captured step runs it."""
    for _ in range(warmup_runs):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(replays):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) * 1e-3)
    return sorted(times)[len(times) // 2]


def _timed(fn: Callable[[], object], replays: int, runtime: str) -> float:
    check_runtime(runtime)
    return graph_seconds(fn, replays) if runtime == "graphs" else eager_seconds(fn, replays)


@torch.no_grad()
def time_decode(model: nn.Module, batch: int, context: int, replays: int = 30, runtime: str = "graphs") -> float:
    """Seconds of one decode step (batch sequences, `context` cached tokens), as a CUDA graph
    (how serving engines decode) or eagerly."""
    from transformers import StaticCache

    cache = StaticCache(config=model.config, max_cache_len=context + 1)
    ids = torch.randint(0, model.config.vocab_size, (batch, 1), device="cuda")
    pos = torch.tensor([context], device="cuda")

    def step():
        return model(input_ids=ids, past_key_values=cache, cache_position=pos, use_cache=True).logits

    return _timed(step, replays, runtime)


@torch.no_grad()
def time_prefill(model: nn.Module, batch: int, context: int, replays: int = 7, runtime: str = "graphs") -> float:
    """Seconds of a prompt forward (batch x context tokens, logits of the last position only),
    as a CUDA graph (eager PyTorch launches ~30 small kernels a block, and at a few hundred
    tokens their CPU cost, not the GPU, sets the time) or eagerly."""
    ids = torch.randint(0, model.config.vocab_size, (batch, context), device="cuda")

    def fwd():
        return model(input_ids=ids, use_cache=False, logits_to_keep=1).logits

    return _timed(fwd, replays, runtime)


# ---- the rest of the forward ----------------------------------------------------------
@dataclass(frozen=True)
class ForwardPoint:
    phase: str  # "decode" | "prefill"
    batch: int
    context: int
    total_s: float  # timed forward
    linear_s: float  # sum of the linear layers' profiled times at the same token counts

    @property
    def rest_s(self) -> float:
        return self.total_s - self.linear_s


def fit_rest(shape: ModelShape, points: list[ForwardPoint], bandwidth: float, fp16_flops: float) -> RestCalibration:
    """Least-squares fit of `RestCalibration` to timed forwards of the fp16 model.

    decode:  rest = L*block_s + kv_bytes * (1/(bw*kv_eff))             unknowns block_s, 1/kv_eff
    prefill: rest = L*block_s + T*L*c * passes + attn_flops * (1/(F*attn_eff))   passes, 1/attn_eff
    """
    import numpy as np

    from autoquant.hardware.latency import _q_width

    L = shape.num_blocks
    dec = [p for p in points if p.phase == "decode"]
    pre = [p for p in points if p.phase == "prefill"]
    a = np.array([[L, kv_cache_bytes(shape, p.batch, p.context) / bandwidth] for p in dec])
    (block_s, inv_kv), *_ = np.linalg.lstsq(a, np.array([p.rest_s for p in dec]), rcond=None)
    block_s, inv_kv = max(float(block_s), 0.0), float(inv_kv)
    kv_eff = 1.0 / inv_kv if inv_kv > 1.0 else 1.0  # cannot beat the bandwidth
    per_pass = (shape.hidden_size + shape.intermediate_size) * 2 / bandwidth
    a = np.array([
        [p.batch * p.context * L * per_pass, L * 2 * p.batch * p.context**2 * _q_width(shape) / fp16_flops] for p in pre
    ])
    b = np.array([p.rest_s - L * block_s for p in pre])
    (passes, inv_attn), *_ = np.linalg.lstsq(a, b, rcond=None)
    passes, inv_attn = float(passes), float(inv_attn)
    return RestCalibration(
        block_s=block_s, kv_efficiency=min(kv_eff, 1.0), token_passes=max(float(passes), 0.0),
        attn_efficiency=min(1.0 / inv_attn, 1.0) if inv_attn > 1.0 else 1.0, measured=True,
    )


def linear_seconds(shape: ModelShape, fmt_of: Callable[[object], QuantFormat], tokens: int, lm_tokens: int,
                   times: dict[str, dict[str, list[float]]], buckets: list[int]) -> float:
    """Sum of profiled layer times (interpolated) for one forward."""
    from autoquant.hardware.profile import _interpolate

    total = 0.0
    for layer in shape.layers:
        t = lm_tokens if layer.role == "lm_head" else tokens
        total += _interpolate(buckets, times[shape_key(layer.out_features, layer.in_features)][str(fmt_of(layer))], t)
    return total


def forward_points(
    model: nn.Module, shape: ModelShape, times: dict[str, dict[str, list[float]]], buckets: list[int],
    decode_contexts: tuple[int, ...] = (512, 4096), prefill_contexts: tuple[int, ...] = (256, 2048),
    progress: Progress | None = None, runtime: str = "graphs",
) -> list[ForwardPoint]:
    """Time the (16-bit) model's forwards under `runtime`; what its linear layers do not explain is the rest."""
    fp16 = QuantFormat("fp16")
    points = []
    for c in decode_contexts:
        points.append(ForwardPoint("decode", 1, c, time_decode(model, 1, c, runtime=runtime),
                                   linear_seconds(shape, lambda _: fp16, 1, 1, times, buckets)))
        if progress:
            progress(f"decode forward ({runtime}), context {c}")
    for c in prefill_contexts:
        points.append(ForwardPoint("prefill", 1, c, time_prefill(model, 1, c, runtime=runtime),
                                   linear_seconds(shape, lambda _: fp16, c, 1, times, buckets)))
        if progress:
            progress(f"prefill forward ({runtime}), {c} tokens")
    return points


def eager_rest(graphs: RestCalibration, graph_points: list[ForwardPoint], eager_points: list[ForwardPoint],
               blocks: int) -> RestCalibration:
    """The eager rest: the graphs fit plus a per-block decode floor. Eager decode steps are bound by
    Python launching ~30 kernels a block (flat in context), which a least-squares fit of the graphs
    model mistakes for attention; eager prefill is GPU-bound and matches graphs (H200: 32.2 vs 32.2 ms)."""
    by = {(p.phase, p.context): p.rest_s for p in graph_points}
    gaps = [p.rest_s - by[(p.phase, p.context)] for p in eager_points
            if p.phase == "decode" and (p.phase, p.context) in by]
    floor = max(sum(gaps) / len(gaps) / blocks, 0.0) if gaps else 0.0
    return dataclasses.replace(graphs, decode_floor_s=floor)


# ---- a whole profile --------------------------------------------------------------------
def run_profile(
    shape: ModelShape,
    model_name: str,
    formats: list[QuantFormat],
    buckets: list[int] | tuple[int, ...] = DEFAULT_BUCKETS,
    config=None,
    progress: Progress | None = None,
    model: nn.Module | None = None,
) -> HardwareProfile:
    """Time every (linear shape, format, bucket) of the model; with its config (or a built 16-bit
    `model`), also time whole forwards of a random-weight copy to fit the rest-of-model allowance."""
    if not torch.cuda.is_available():
        raise RuntimeError("profiling needs a CUDA GPU")
    buckets = sorted(set(int(b) for b in buckets))
    fmts = list(dict.fromkeys([QuantFormat("fp16"), *formats]))  # fp16 always: the rest fit needs it
    ident = gpu_identity()
    bw = measure_bandwidth()
    flops = measure_fp16_flops()
    shapes = [(layer.out_features, layer.in_features) for layer in shape.layers]
    times = profile_layers(shapes, fmts, buckets, progress)
    notes: dict = {"method": "per call in a CUDA graph over weight copies totalling >= 256 MB (weights read from "
                             "DRAM, no launch overhead); whole forwards (decode with a static KV cache) both as CUDA "
                             "graphs and eagerly, one rest-of-model fit for each runtime"}
    prof = HardwareProfile(
        gpu=ident, created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), model=model_name,
        bandwidth=bw, fp16_flops=flops, buckets=buckets, layers=times, notes=notes,
    )
    fits = shape.total_params * 2 < 0.6 * ident["memory_bytes"]
    if model is None and config is not None and not fits:
        notes["rest"] = "default, not fitted: the 16-bit model does not fit this GPU for a timed forward"
    elif model is not None or config is not None:
        built = model is None
        fwd_model = build_model(config) if built else model
        points = {}
        for runtime in RUNTIMES:  # a decode step's rest differs ~3x between a captured graph and eager launches
            points[runtime] = forward_points(fwd_model, shape, times, buckets, progress=progress, runtime=runtime)
            notes[f"rest_points_{runtime}"] = [vars(p) | {"rest_s": p.rest_s} for p in points[runtime]]
        graphs = fit_rest(shape, points["graphs"], bw, flops)
        prof.rests = {"graphs": graphs,
                      "eager": eager_rest(graphs, points["graphs"], points["eager"], shape.num_blocks)}
        if built:
            del fwd_model
            torch.cuda.empty_cache()
    return prof
