"""Latency of a whole plan: decode and prefill seconds, and where the numbers come from.

    decode  = sum over linear layers of layer_seconds(out, in, format, batch)
              + rest of the forward (attention over the KV cache, norms, small kernels)
    prefill = sum over linear layers of layer_seconds(out, in, format, batch x context)
              (lm_head on `batch` tokens: only the last position's logits are needed)
              + rest of the forward (attention FLOPs, elementwise traffic, small kernels)

The per-layer times come from a `LatencyModel`: a measured profile of this GPU, or a roofline
of its spec. The rest is the `RestCalibration` the profile fitted to timed forwards (or a
default). `PlanLatency.estimated` is True unless every number was measured.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from autoquant.hardware.base import LatencyModel, check_runtime
from autoquant.hardware.profile import (HardwareProfile, ProfileModel, builtin_profiles, covered_shapes,
                                        saved_profiles, software_rank)
from autoquant.hardware.roofline import RooflineModel
from autoquant.hardware.specs import GPUSpec, get_spec, match_spec
from autoquant.errors import UserError
from autoquant.memory import ModelShape, kv_cache_bytes
from autoquant.plan import Plan

DTYPE_BYTES = 2


@dataclass(frozen=True)
class LayerLatency:
    name: str
    format: str
    decode_s: float
    prefill_s: float
    measured: bool


@dataclass(frozen=True)
class PlanLatency:
    decode_s: float  # one decode step: one new token for each of `batch` sequences
    prefill_s: float  # the prompt: batch x context tokens
    estimated: bool  # True unless every layer time and the rest allowance were measured
    linear_decode_s: float
    linear_prefill_s: float
    rest_decode_s: float
    rest_prefill_s: float
    batch: int
    context: int
    source: str  # the latency model's name
    layers: tuple[LayerLatency, ...] = ()
    runtime: str = "graphs"  # how the forward is launched: one CUDA graph (serving engines) or eagerly

    @property
    def label(self) -> str:
        return "estimated" if self.estimated else "measured"

    def to_dict(self, with_layers: bool = False) -> dict:
        d = {k: getattr(self, k) for k in (
            "decode_s", "prefill_s", "estimated", "linear_decode_s", "linear_prefill_s",
            "rest_decode_s", "rest_prefill_s", "batch", "context", "source", "runtime")}
        if with_layers:
            d["layers"] = [vars(layer) for layer in self.layers]
        return d


def _q_width(shape: ModelShape) -> int:
    """Width of the attention queries (heads x head_dim); the hidden size when no q layer is found."""
    for layer in shape.layers:
        if layer.role == "q":
            return layer.out_features
        if layer.role == "qkv":
            return layer.out_features - 2 * shape.num_kv_heads * shape.head_dim
    return shape.hidden_size


def rest_decode_seconds(shape: ModelShape, model: LatencyModel, batch: int, context: int) -> float:
    r = model.rest
    kv = kv_cache_bytes(shape, batch, context)
    return shape.num_blocks * (r.block_s + r.decode_floor_s) + kv / (model.bandwidth * r.kv_efficiency)


def rest_prefill_seconds(shape: ModelShape, model: LatencyModel, batch: int, context: int) -> float:
    r = model.rest
    tokens = batch * context
    per_token = r.token_passes * (shape.hidden_size + shape.intermediate_size) * DTYPE_BYTES / model.bandwidth
    attn_flops = shape.num_blocks * 2 * batch * context * context * _q_width(shape)  # causal: half of 4·C²·d
    return shape.num_blocks * (r.block_s + tokens * per_token) + attn_flops / (model.fp16_flops * r.attn_efficiency)


def plan_latency(
    shape: ModelShape, plan: Plan, model: LatencyModel, batch: int = 1, context: int = 4096
) -> PlanLatency:
    """Decode and prefill seconds of serving `shape` under `plan` on the model's GPU."""
    if batch < 1 or context < 1:
        raise ValueError(f"batch and context must be at least 1, got {batch}, {context}")
    rows = []
    measured = model.measured and model.rest.measured
    for layer in shape.layers:
        fmt = plan.format_of(layer)
        n, k = layer.out_features, layer.in_features
        dec = model.layer_time(n, k, fmt, batch)
        pre = model.layer_time(n, k, fmt, batch if layer.role == "lm_head" else batch * context)
        ok = dec.measured and pre.measured
        measured = measured and ok
        rows.append(LayerLatency(layer.name, str(fmt), dec.seconds, pre.seconds, ok))
    lin_dec = sum(r.decode_s for r in rows)
    lin_pre = sum(r.prefill_s for r in rows)
    rest_dec = rest_decode_seconds(shape, model, batch, context)
    rest_pre = rest_prefill_seconds(shape, model, batch, context)
    return PlanLatency(
        decode_s=lin_dec + rest_dec, prefill_s=lin_pre + rest_pre, estimated=not measured,
        linear_decode_s=lin_dec, linear_prefill_s=lin_pre, rest_decode_s=rest_dec, rest_prefill_s=rest_pre,
        batch=batch, context=context, source=model.name, layers=tuple(rows), runtime=model.runtime,
    )


# ---- choosing a model ---------------------------------------------------------------
def local_gpu_name() -> str | None:
    import torch

    if not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_name(torch.cuda.current_device())


def profile_spec(prof: HardwareProfile) -> GPUSpec | None:
    """The built-in spec a profile was measured on: its recorded spec name, else its device name."""
    name = prof.gpu.get("spec")
    if name:
        try:
            return get_spec(str(name))
        except UserError:
            pass
    return match_spec(prof.gpu_name)


def all_profiles() -> list[tuple[Path, HardwareProfile, str]]:
    """Every profile this machine knows: (path, profile, origin), origin "user" (the cache
    directory, from `autoquant hardware profile`) or "built-in" (package data)."""
    return ([(p, prof, "user") for p, prof in saved_profiles()]
            + [(p, prof, "built-in") for p, prof in builtin_profiles()])


def choose_profile(match, shape: ModelShape | None = None) -> tuple[Path, HardwareProfile, str] | None:
    """The profile to use, (path, profile, origin), among those `match` accepts, user and built-in alike.

    With a model shape: only profiles that measured at least one of its linear shapes, the
    one covering the most first. Then newer software (driver, Triton, torch, date) wins, so a
    profile measured on a newer driver or kernel version replaces the built-in one.
    """
    found = [t for t in all_profiles() if match(t[1])]
    if shape is None:
        return max(found, key=lambda t: software_rank(t[1]), default=None)
    shapes = {(l.out_features, l.in_features) for l in shape.layers}
    scored = [(covered_shapes(t[1], shapes), t) for t in found]
    return max(((n, t) for n, t in scored if n > 0), key=lambda x: (x[0], software_rank(x[1][1])),
               default=(0, None))[1]


def _profile_model(match, shape: ModelShape | None, runtime: str) -> ProfileModel | None:
    chosen = choose_profile(match, shape)
    return None if chosen is None else ProfileModel(chosen[1], source=str(chosen[0]), runtime=runtime)


def latency_model_for(hardware: str | None, shape: ModelShape | None = None, runtime: str = "graphs") -> LatencyModel:
    """The latency model for `--hardware`.

    * a path to a profile JSON: that profile;
    * a built-in GPU name (h100, A100, ...; case-insensitive): a measured profile of that GPU
      (saved on this machine or built into autoquant; `choose_profile` picks by the model's
      layer shapes when `shape` is given, then by software version), else the roofline of its spec;
    * None: a profile of the local GPU, else the roofline of its spec, else the H100
      roofline. Anything not measured is labelled estimated (`model.measured` is False).
    `runtime` picks the rest-of-model fit: "graphs" (a decode step replayed as one CUDA graph,
    as serving engines run it) or "eager". Unknown names raise UserError listing the known ones.
    """
    check_runtime(runtime)
    if hardware is None:
        name = local_gpu_name()
        if name is None:
            return RooflineModel(get_spec("h100"), runtime)
        found = _profile_model(lambda p: p.gpu_name == name, shape, runtime)
        if found is not None:
            return found
        spec = match_spec(name)
        return RooflineModel(spec if spec is not None else get_spec("h100"), runtime)
    if hardware.endswith(".json") or Path(hardware).expanduser().is_file():
        path = Path(hardware).expanduser()
        return ProfileModel(HardwareProfile.load(path), source=str(path), runtime=runtime)
    spec = get_spec(hardware)
    found = _profile_model(lambda p: profile_spec(p) == spec, shape, runtime)
    return found if found is not None else RooflineModel(spec, runtime)
