"""Targets of a fleet spec (model x hardware x workload x budget) and the fingerprint of each one's inputs.

A target is stale when its fingerprint differs from the one recorded in the catalog. The
fingerprint hashes what decides the search's answer, component by component, so `status`
can say which one changed:

    model      content hash of config + weights (autoquant.models.fingerprint)
    hardware   the latency source the search will use: the profile file's bytes (built in or
               measured here; a newer-driver profile replaces the built-in one), else the spec
    space      the search space's content (not its name)
    budgets    memory resolved against the GPU's memory, quality, latency
    workload   batch and context
    search     trials, eval tokens, plans measured
    autoquant  the package version and the sensitivity method version
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

from autoquant.hardware import latency_model_for
from autoquant.hardware.latency import profile_spec
from autoquant.hardware.profile import ProfileModel
from autoquant.hardware.specs import get_spec
from autoquant.memory import ModelShape
from autoquant.models import fingerprint, resolve_model
from autoquant.schedule.fleet import DEFAULT_MODEL, BudgetSpec, FleetSpec, Workload
from autoquant.search import Budgets
from autoquant.space import load_space


@dataclass(frozen=True)
class Target:
    model: str  # as in the spec ("default" or a resolved path / hub id)
    hardware: str  # built-in GPU name or profile JSON path
    workload: Workload
    budget: BudgetSpec

    @property
    def id(self) -> str:
        return "/".join((model_label(self.model), hardware_label(self.hardware), self.workload.label, self.budget.label))


def model_label(model: str) -> str:
    if model == DEFAULT_MODEL:
        return DEFAULT_MODEL
    p = Path(model)
    name = p.stem if p.suffix.lower() == ".gguf" else (p.name if p.is_absolute() else model.replace("/", "--"))
    return re.sub(r"[^A-Za-z0-9._=-]+", "-", name).strip("-") or "model"


def hardware_label(hardware: str) -> str:
    return Path(hardware).stem if hardware.endswith(".json") else hardware


def expand(fleet: FleetSpec) -> list[Target]:
    """Every target of the spec, in spec order (models, then hardware, workloads, budgets)."""
    return [Target(m, h, w, b) for m in fleet.models for h in fleet.hardware for w in fleet.workloads
            for b in fleet.budgets]


@dataclass(frozen=True)
class ResolvedTarget:
    """A target with everything its search needs and the fingerprint of those inputs."""

    target: Target
    search_hardware: str  # what the search's --hardware gets: a profile path, or the GPU name
    latency_source: str  # "built-in profile h100-llama-3-8b.json", "roofline of l4 (estimated)"
    budgets: Budgets
    inputs: dict[str, str] = field(default_factory=dict)  # component -> short hash or value

    @property
    def fingerprint(self) -> str:
        return _digest(self.inputs)


def _digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def autoquant_version() -> str:
    """The package version and the sensitivity method's (imported here: the CLI starts without it)."""
    from autoquant.sensitivity import METHOD_VERSION

    try:
        version = metadata.version("autoquant")
    except metadata.PackageNotFoundError:
        version = "unknown"
    return f"{version}+sensitivity{METHOD_VERSION}"


@lru_cache(maxsize=64)
def _model(model: str) -> tuple[str, ModelShape]:
    source = resolve_model(None if model == DEFAULT_MODEL else model)
    return fingerprint(source), ModelShape.from_source(source)


@lru_cache(maxsize=64)
def _space(space: str) -> str:
    return _digest(load_space(space).to_dict())


def _hardware(hardware: str, shape: ModelShape) -> tuple[str, str, str, int]:
    """(search --hardware, label, content hash, GPU memory bytes) of one hardware entry."""
    model = latency_model_for(hardware, shape)
    if isinstance(model, ProfileModel):
        path = Path(model.source)
        prof = model.profile
        spec = profile_spec(prof)
        memory = spec.memory_bytes if spec is not None else int(prof.gpu.get("memory_bytes", 0))
        origin = "built-in" if path.parent.name == "profiles" and path.parent.parent.name == "hardware" else "measured"
        label = f"{origin} profile {path.name} (driver {prof.gpu.get('driver', '?')}, {prof.created[:10]})"
        return str(path), label, hashlib.sha256(path.read_bytes()).hexdigest()[:16], memory
    spec = get_spec(hardware)
    return spec.name, f"roofline of {spec.name} (estimated)", _digest(spec.to_dict()), spec.memory_bytes


def resolve(target: Target, fleet: FleetSpec) -> ResolvedTarget:
    model_fp, shape = _model(target.model)
    search_hw, label, hw_fp, gpu_memory = _hardware(target.hardware, shape)
    b = target.budget
    budgets = Budgets(memory_bytes=b.memory_for(gpu_memory), latency_s=b.latency_s, quality=b.quality)
    inputs = {
        "model": model_fp,
        "hardware": hw_fp,
        "space": _space(fleet.space),
        "budgets": json.dumps([budgets.memory_bytes, budgets.latency_s, None if b.quality is None else str(b.quality)]),
        "workload": target.workload.label,
        "search": f"trials={fleet.trials},eval_tokens={fleet.eval_tokens},measure={fleet.measure}",
        "autoquant": autoquant_version(),
    }
    return ResolvedTarget(target, search_hw, label, budgets, inputs)


def resolve_all(fleet: FleetSpec) -> list[ResolvedTarget]:
    return [resolve(t, fleet) for t in expand(fleet)]
