"""The fleet spec: which models, GPUs, workloads and budgets a team serves (YAML).

    models: [default]                  # hub ids, model dirs, .gguf files, or default (embedded)
    hardware: [h100, l4, rtx4090]      # built-in GPU names, profile JSON paths, or all
    workloads: [{batch: 1, context: 4096}]
    budgets: [{memory: 0.82GB}, {memory: 90%, quality: "kl=0.05", latency: 30ms}]
    space: default                     # a bundled search space name or a YAML path
    trials: 300
    eval_tokens: 4096                  # optional: held-out tokens per plan measurement
    measure: 6                         # optional: front plans measured for real

Every mistake is a UserError naming the file and the key (the CLI prints one line, exit 2).
A memory budget may be a percentage of each GPU's memory, so one spec fits every generation.
Paths in the spec are relative to the spec file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from autoquant.costs import QualityBudget, parse_latency, parse_quality, parse_size
from autoquant.errors import UserError
from autoquant.hardware.specs import BUILTIN_SPECS, get_spec
from autoquant.search import DEFAULT_EVAL_TOKENS, DEFAULT_MEASURE, DEFAULT_TRIALS

_KEYS = ("models", "hardware", "workloads", "budgets", "space", "trials", "eval_tokens", "measure")
_REQUIRED = ("models", "hardware", "budgets")
_BUDGET_KEYS = ("memory", "quality", "latency")
_WORKLOAD_KEYS = ("batch", "context")
DEFAULT_MODEL = "default"


@dataclass(frozen=True)
class Workload:
    batch: int
    context: int

    @property
    def label(self) -> str:
        return f"b{self.batch}-c{self.context}"


@dataclass(frozen=True)
class BudgetSpec:
    """One budget line of the spec. Memory is bytes, or a fraction of the GPU's memory."""

    text: str  # the memory budget as written (24GB, 90%): target ids show it
    memory_bytes: int | None
    memory_fraction: float | None
    quality: QualityBudget | None = None
    latency_s: float | None = None

    def memory_for(self, gpu_memory_bytes: int) -> int:
        if self.memory_bytes is not None:
            return self.memory_bytes
        return int(gpu_memory_bytes * self.memory_fraction)

    @property
    def label(self) -> str:
        parts = [f"memory={self.text}"]
        if self.quality is not None:
            parts.append(str(self.quality))
        if self.latency_s is not None:
            parts.append(f"latency={self.latency_s * 1e3:g}ms")
        return ",".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {"memory": self.text, "memory_bytes": self.memory_bytes, "memory_fraction": self.memory_fraction,
                "quality": None if self.quality is None else str(self.quality), "latency_s": self.latency_s}


@dataclass(frozen=True)
class FleetSpec:
    models: tuple[str, ...]  # as written; "default" is the embedded model
    hardware: tuple[str, ...]  # built-in GPU names (canonical) or absolute profile JSON paths
    workloads: tuple[Workload, ...]
    budgets: tuple[BudgetSpec, ...]
    space: str
    trials: int
    eval_tokens: int
    measure: int
    path: str  # the spec file


def _fail(path: str, key: str, problem: str) -> UserError:
    return UserError(f"fleet spec {path}: {key}: {problem}")


def _list(path: str, data: dict, key: str, default: list | None = None) -> list:
    value = data.get(key, default)
    if isinstance(value, (str, int, float, dict)):
        value = [value]
    if not isinstance(value, list) or not value:
        raise _fail(path, key, "expected a non-empty list")
    return value


def _int(path: str, key: str, value: Any, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise _fail(path, key, f"expected a whole number of at least {least}, got {value!r}")
    return value


def _relative(base: Path, text: str) -> str:
    p = Path(text).expanduser()
    return str(p if p.is_absolute() else (base / p).resolve())


def _models(path: str, base: Path, data: dict) -> tuple[str, ...]:
    from autoquant.models import resolve_model

    out = []
    for i, m in enumerate(_list(path, data, "models")):
        if not isinstance(m, str) or not m.strip():
            raise _fail(path, f"models[{i}]", f"expected a hub id, a model directory, a .gguf file or default, got {m!r}")
        m = m.strip()
        if m != DEFAULT_MODEL and (m.startswith((".", "/", "~")) or m.endswith(".gguf") or (base / m).exists()):
            m = _relative(base, m)
        try:
            resolve_model(None if m == DEFAULT_MODEL else m)
        except UserError as e:
            raise _fail(path, f"models[{i}]", str(e)) from None
        out.append(m)
    return tuple(dict.fromkeys(out))


def _hardware(path: str, base: Path, data: dict) -> tuple[str, ...]:
    from autoquant.hardware.profile import HardwareProfile

    out = []
    for i, h in enumerate(_list(path, data, "hardware")):
        key = f"hardware[{i}]"
        if not isinstance(h, str) or not h.strip():
            raise _fail(path, key, f"expected a GPU name, a profile JSON path or all, got {h!r}")
        h = h.strip()
        if h.lower() == "all":
            out.extend(s.name for s in BUILTIN_SPECS)
        elif h.endswith(".json"):
            p = _relative(base, h)
            try:
                HardwareProfile.load(p)
            except UserError as e:
                raise _fail(path, key, str(e)) from None
            out.append(p)
        else:
            try:
                out.append(get_spec(h).name)
            except UserError as e:
                raise _fail(path, key, str(e)) from None
    return tuple(dict.fromkeys(out))


def _workloads(path: str, data: dict) -> tuple[Workload, ...]:
    out = []
    for i, w in enumerate(_list(path, data, "workloads", [{"batch": 1, "context": 4096}])):
        key = f"workloads[{i}]"
        if not isinstance(w, dict) or set(w) - set(_WORKLOAD_KEYS):
            raise _fail(path, key, f"expected a mapping with keys {', '.join(_WORKLOAD_KEYS)}, got {w!r}")
        out.append(Workload(_int(path, f"{key}.batch", w.get("batch", 1), 1),
                            _int(path, f"{key}.context", w.get("context", 4096), 1)))
    return tuple(dict.fromkeys(out))


def _memory(path: str, key: str, value: Any) -> tuple[int | None, float | None]:
    text = str(value).strip()
    if text.endswith("%"):
        try:
            pct = float(text[:-1])
        except ValueError:
            pct = -1.0
        if not 0 < pct <= 100:
            raise _fail(path, key, f"expected a percentage of the GPU's memory between 0 and 100%, got {value!r}")
        return None, pct / 100
    try:
        return parse_size(text, "memory budget"), None
    except UserError as e:
        raise _fail(path, key, f"{e}, or a percentage of the GPU's memory such as 90%") from None


def _budgets(path: str, data: dict) -> tuple[BudgetSpec, ...]:
    out = []
    for i, b in enumerate(_list(path, data, "budgets")):
        key = f"budgets[{i}]"
        if not isinstance(b, dict):
            raise _fail(path, key, f"expected a mapping such as {{memory: 24GB, quality: \"kl=0.05\"}}, got {b!r}")
        unknown = set(b) - set(_BUDGET_KEYS)
        if unknown:
            raise _fail(path, f"{key}.{sorted(unknown)[0]}", f"unknown key; accepted: {', '.join(_BUDGET_KEYS)}")
        if "memory" not in b:
            raise _fail(path, key, "needs a memory budget, e.g. memory: 24GB or memory: 90%")
        mem, frac = _memory(path, f"{key}.memory", b["memory"])
        try:
            quality = None if b.get("quality") is None else parse_quality(str(b["quality"]))
            latency = None if b.get("latency") is None else parse_latency(str(b["latency"]))
        except UserError as e:
            raise _fail(path, key, str(e)) from None
        out.append(BudgetSpec(str(b["memory"]).strip().replace(" ", ""), mem, frac, quality, latency))
    return tuple(dict.fromkeys(out))


def _space(path: str, base: Path, data: dict) -> str:
    from autoquant.space import bundled_spaces, load_space

    space = data.get("space", "default")
    if not isinstance(space, str) or not space.strip():
        raise _fail(path, "space", f"expected a bundled space name or a YAML path, got {space!r}")
    if space not in bundled_spaces():
        space = _relative(base, space)
    try:
        load_space(space)
    except UserError as e:
        raise _fail(path, "space", str(e)) from None
    return space


def parse_fleet(data: Any, path: str = "<dict>", base: Path | None = None) -> FleetSpec:
    """Validate a loaded YAML document; relative paths are taken from `base`."""
    base = base or Path.cwd()
    if not isinstance(data, dict):
        raise UserError(f"fleet spec {path}: expected a mapping with keys {', '.join(_KEYS)}")
    for key in data:
        if key not in _KEYS:
            raise _fail(path, str(key), f"unknown key; accepted: {', '.join(_KEYS)}")
    for key in _REQUIRED:
        if key not in data:
            raise _fail(path, key, "missing (required keys: " + ", ".join(_REQUIRED) + ")")
    return FleetSpec(
        models=_models(path, base, data), hardware=_hardware(path, base, data), workloads=_workloads(path, data),
        budgets=_budgets(path, data), space=_space(path, base, data),
        trials=_int(path, "trials", data.get("trials", DEFAULT_TRIALS), 1),
        eval_tokens=_int(path, "eval_tokens", data.get("eval_tokens", DEFAULT_EVAL_TOKENS), 64),
        measure=_int(path, "measure", data.get("measure", DEFAULT_MEASURE), 1),
        path=path,
    )


def load_fleet(path: str | os.PathLike) -> FleetSpec:
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text())
    except FileNotFoundError:
        raise UserError(f"fleet spec not found: {path}") from None
    except yaml.YAMLError as e:
        raise UserError(f"fleet spec {path}: not valid YAML: {str(e).splitlines()[0]}") from None
    except OSError as e:
        raise UserError(f"fleet spec {path}: cannot read: {e.strerror}") from None
    return parse_fleet(data, str(path), p.resolve().parent)
