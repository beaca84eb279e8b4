"""Versioned latency profiles: kernel times measured on one GPU, saved as JSON.

A profile holds, for each linear shape [out, in] a model needs and each format, the
median seconds at a set of token buckets (1, 4, 16, ... tokens), plus the GPU's identity
(name, memory, driver, CUDA, torch, triton), the bandwidth and FLOP rate measured in the
same run, and the fitted allowance for the rest of the forward (`RestCalibration`).

`ProfileModel` answers from it: measured shapes interpolate between buckets (linear in
tokens, linear extrapolation past the last); a shape the profile lacks is a roofline
scaled by what the profiled shapes reached in that format, and is labelled estimated.
"""

from __future__ import annotations

import bisect
import os
import statistics
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from autoquant.errors import UserError
from autoquant.formats import QuantFormat
from autoquant.hardware.base import LatencyModel, LayerTime, RestCalibration, check_runtime
from autoquant.hardware.roofline import DEFAULT_RESTS, roofline_seconds
from autoquant.models import CACHE_DIR
from autoquant.jsonfile import read_json, write_json

PROFILE_VERSION = 1
# Token counts timed by default: decode batches, then prefill lengths. 512 and 1024 sit where the
# fused int4 prefill kernel takes over from dequantize + cuBLAS (kernels/wgmma_int4.py), which
# interpolating between 256 and 2048 would miss.
DEFAULT_BUCKETS = (1, 4, 16, 64, 256, 512, 1024, 2048)
# Eager decode: a QuantLinear call costs ~160 us more CPU time than nn.Linear's (custom op, checks,
# path choice, Triton launch), so the step waits on Python (H200 validation, Llama-3-8B: int4 decode
# 52.9-57.5 ms eager vs 17.7-17.9 ms fp16, 224 layers). Hidden behind GPU work at prefill sizes.
EAGER_QUANT_CALL_S = 160e-6
EAGER_LAUNCH_BOUND_TOKENS = 16


def profile_dir() -> Path:
    return CACHE_DIR / "hardware"


def shape_key(out_features: int, in_features: int) -> str:
    return f"{out_features}x{in_features}"


@dataclass
class HardwareProfile:
    gpu: dict[str, Any]  # name, spec, memory_bytes, sms, capability, driver, cuda, torch, triton
    created: str  # ISO date-time (UTC)
    model: str  # the model whose shapes were profiled
    bandwidth: float  # DRAM bytes/s measured in the run (device-to-device copy, read + write)
    fp16_flops: float  # measured 16-bit matmul FLOP/s
    buckets: list[int]  # token counts timed
    layers: dict[str, dict[str, list[float]]]  # "NxK" -> format -> seconds per bucket
    # runtime ("graphs" | "eager") -> rest-of-model fit; profiles before the eager fit hold "graphs" only
    rests: dict[str, RestCalibration] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)  # kernel configs, measurement method, ...

    @property
    def gpu_name(self) -> str:
        return str(self.gpu.get("name", "unknown GPU"))

    def rest_for(self, runtime: str) -> RestCalibration:
        """The fitted rest for `runtime`, else the default (not measured, so plans say estimated)."""
        return self.rests.get(runtime) or DEFAULT_RESTS[runtime]

    def to_dict(self) -> dict[str, Any]:
        return {
            "autoquant_hardware_profile_version": PROFILE_VERSION,
            "gpu": self.gpu,
            "created": self.created,
            "model": self.model,
            "bandwidth": self.bandwidth,
            "fp16_flops": self.fp16_flops,
            "buckets": self.buckets,
            "rest": self.rest_for("graphs").to_dict(),  # read by autoquant before the runtime option
            "rests": {runtime: r.to_dict() for runtime, r in self.rests.items()},
            "layers": self.layers,
            "notes": self.notes,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "profile") -> HardwareProfile:
        version = d.get("autoquant_hardware_profile_version")
        if version != PROFILE_VERSION:
            raise UserError(f"{where}: unsupported profile version {version!r}; this autoquant reads {PROFILE_VERSION}")
        try:
            prof = cls(
                gpu=dict(d["gpu"]), created=str(d["created"]), model=str(d.get("model", "")),
                bandwidth=float(d["bandwidth"]), fp16_flops=float(d["fp16_flops"]),
                buckets=[int(b) for b in d["buckets"]],
                layers={k: {f: [float(t) for t in ts] for f, ts in v.items()} for k, v in d["layers"].items()},
                rests=_read_rests(d),
                notes=dict(d.get("notes", {})),
            )
            for per_fmt in prof.layers.values():
                for f, ts in per_fmt.items():
                    QuantFormat.parse(f)
                    if len(ts) != len(prof.buckets):
                        raise ValueError(f"{len(ts)} times for {len(prof.buckets)} buckets")
        except (KeyError, TypeError, ValueError) as e:
            raise UserError(f"{where} is not a valid hardware profile: {e}") from None
        return prof

    # ---- files ------------------------------------------------------------------
    def default_path(self) -> Path:
        slug = "".join(c if c.isalnum() else "-" for c in self.gpu_name.lower()).strip("-")
        return profile_dir() / f"{slug}.json"

    def save(self, path: str | os.PathLike | None = None) -> Path:
        return write_json(path if path is not None else self.default_path(), self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> HardwareProfile:
        return cls.from_dict(read_json(path, "hardware profile"), where=str(path))


def _read_rests(d: dict[str, Any]) -> dict[str, RestCalibration]:
    if "rests" in d:
        return {str(k): RestCalibration.from_dict(v) for k, v in d["rests"].items() if k in DEFAULT_RESTS}
    rest = RestCalibration.from_dict(d["rest"]) if "rest" in d else None
    # older profiles fitted one rest, to HF forwards captured as CUDA graphs
    return {"graphs": rest} if rest is not None and rest.measured else {}


def saved_profiles(directory: Path | None = None) -> list[tuple[Path, HardwareProfile]]:
    """Profiles under the cache directory, newest first; unreadable files are skipped."""
    directory = directory or profile_dir()
    out = []
    for p in sorted(directory.glob("*.json")):
        try:
            out.append((p, HardwareProfile.load(p)))
        except UserError:
            continue
    return sorted(out, key=lambda t: t[1].created, reverse=True)


BUILTIN_PROFILE_DIR = Path(__file__).parent / "profiles"  # measured profiles shipped as package data


@lru_cache(maxsize=1)
def builtin_profiles() -> tuple[tuple[Path, HardwareProfile], ...]:
    """The measured profiles that ship with autoquant (package data), newest first."""
    return tuple(saved_profiles(BUILTIN_PROFILE_DIR))


def _version(text: Any) -> tuple[int, ...]:
    """'580.159.04' -> (580, 159, 4); '2.11.0+cu130' -> (2, 11, 0); unknown -> ()."""
    parts = []
    for piece in str(text).split("+")[0].split("."):
        digits = "".join(c for c in piece if c.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def software_rank(prof: HardwareProfile) -> tuple:
    """Orders profiles of one GPU: a newer driver, then newer kernels (Triton, torch), then a
    later measurement wins. A profile timed on newer software replaces an older one."""
    g = prof.gpu
    return (_version(g.get("driver")), _version(g.get("triton")), _version(g.get("torch")), prof.created)


def covered_shapes(prof: HardwareProfile, shapes: set[tuple[int, int]]) -> int:
    """How many of the (out, in) linear shapes the profile measured."""
    return sum(shape_key(n, k) in prof.layers for n, k in shapes)


def _interpolate(buckets: list[int], times: list[float], tokens: int) -> float:
    if tokens <= buckets[0]:
        return times[0]
    if tokens >= buckets[-1]:
        return times[-1] * tokens / buckets[-1]  # compute-bound: linear in tokens
    i = bisect.bisect_left(buckets, tokens)
    b0, b1 = buckets[i - 1], buckets[i]
    w = (tokens - b0) / (b1 - b0)
    return times[i - 1] + w * (times[i] - times[i - 1])


class ProfileModel(LatencyModel):
    """Latency from a measured profile."""

    measured = True

    def __init__(self, profile: HardwareProfile, source: str = "", runtime: str = "graphs") -> None:
        check_runtime(runtime)
        self.profile = profile
        self.source = source
        self.runtime = runtime
        self.bandwidth = profile.bandwidth
        self.fp16_flops = profile.fp16_flops
        self.rest = profile.rest_for(runtime)
        self.name = f"{profile.gpu_name} profile ({profile.created[:10]}), {runtime}"
        self._cached = lru_cache(maxsize=65536)(self._layer_time)

    def layer_time(self, out_features: int, in_features: int, fmt: QuantFormat, tokens: int) -> LayerTime:
        return self._cached(out_features, in_features, fmt, tokens)

    def _layer_time(self, out_features: int, in_features: int, fmt: QuantFormat, tokens: int) -> LayerTime:
        times = self.profile.layers.get(shape_key(out_features, in_features), {}).get(str(fmt))
        if times is not None:
            t = _interpolate(self.profile.buckets, times, tokens)
            if self.runtime == "eager" and not fmt.is_float:
                # the profile times kernels, not the Python launch of a QuantLinear call, which
                # eager decode waits on: an estimate from the H200 validation, labelled so
                return LayerTime(t + (EAGER_QUANT_CALL_S if tokens <= EAGER_LAUNCH_BOUND_TOKENS else 0.0), False)
            return LayerTime(t, measured=True)
        ratio = self._format_ratio(str(fmt), tokens)
        t = ratio * roofline_seconds(out_features, in_features, fmt, tokens, self.bandwidth, self.fp16_flops, 1.0, 1.0, 0.0)
        return LayerTime(t, measured=False)

    @lru_cache(maxsize=4096)
    def _format_ratio(self, fmt: str, tokens: int) -> float:
        """Median of measured / ideal-roofline over the profiled shapes in this format (any
        format of the same bit width if this one was not profiled)."""
        p = self.profile
        q = QuantFormat.parse(fmt)
        candidates = [fmt] + sorted({f for v in p.layers.values() for f in v if QuantFormat.parse(f).bits == q.bits})
        for f in candidates:
            ratios = []
            for key, per_fmt in p.layers.items():
                if f not in per_fmt:
                    continue
                n, k = (int(v) for v in key.split("x"))
                ideal = roofline_seconds(n, k, QuantFormat.parse(f), tokens, self.bandwidth, self.fp16_flops, 1.0, 1.0, 0.0)
                ratios.append(_interpolate(p.buckets, per_fmt[f], tokens) / ideal)
            if ratios:
                return statistics.median(ratios)
        return 1.0 / 0.7  # nothing of this bit width was profiled: a plain derated roofline

