"""The catalog of scheduled searches: what each target recommends, shared with the app.

    <catalog>/catalog.json      {"version": 1, "targets": {"<target id>": CatalogEntry}}
    <catalog>/CHANGES.md        appended by every run (changes.py)
    <catalog>/targets/<slug>/   plan.json, front.json (+ front.png, sensitivity.json) per target

One entry (paths relative to the catalog directory; null where a target has no plan):

    model, hardware, workload {batch, context}, budgets {memory, quality, latency}, space, trials,
    plan, front, quality {ppl, delta_ppl, kl}, memory_bytes,
    latency {decode_ms, prefill_ms, estimated, source}, fingerprint, date, feasible,
    inputs {component: hash} (what the fingerprint hashes), reason (why infeasible)

Written atomically (temp file + rename): a crash mid-run leaves the previous catalog whole.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from autoquant.errors import UserError
from autoquant.jsonfile import read_json, write_json

CATALOG_VERSION = 1
CATALOG_FILE = "catalog.json"
CHANGES_FILE = "CHANGES.md"
DEFAULT_CATALOG_DIR = "runs/catalog"


@dataclass(frozen=True)
class Quality:
    ppl: float  # perplexity of the recommended plan on held-out text
    delta_ppl: float  # relative change vs fp16 (0.02 = +2%)
    kl: float  # mean KL vs fp16, nats/token


@dataclass(frozen=True)
class Latency:
    decode_ms: float
    prefill_ms: float
    estimated: bool  # False only when every layer time came from a measured profile
    source: str  # the latency model: a profile of a GPU, or a roofline


@dataclass(frozen=True)
class CatalogEntry:
    model: str  # as in the spec: "default" is the embedded model, else a hub id or an absolute path
    hardware: str
    workload: dict[str, int]  # {"batch", "context"}
    budgets: dict[str, Any]  # {"memory" (bytes), "quality" ("kl=0.05" or null), "latency" (s or null)}
    space: str
    trials: int
    plan: str | None  # path of plan.json, relative to the catalog directory
    front: str | None  # path of front.json, relative to the catalog directory
    quality: Quality | None
    memory_bytes: int | None
    latency: Latency | None
    fingerprint: str
    date: str  # ISO date-time (UTC) of the search
    feasible: bool
    inputs: dict[str, str] = field(default_factory=dict)
    reason: str = ""  # why no plan fits, when infeasible

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CatalogEntry:
        q, lat = d.get("quality"), d.get("latency")
        return cls(
            model=str(d["model"]), hardware=str(d["hardware"]), workload=dict(d["workload"]),
            budgets=dict(d["budgets"]), space=str(d["space"]), trials=int(d["trials"]),
            plan=d.get("plan"), front=d.get("front"),
            quality=None if q is None else Quality(float(q["ppl"]), float(q["delta_ppl"]), float(q["kl"])),
            memory_bytes=None if d.get("memory_bytes") is None else int(d["memory_bytes"]),
            latency=None if lat is None else Latency(float(lat["decode_ms"]), float(lat["prefill_ms"]),
                                                     bool(lat["estimated"]), str(lat["source"])),
            fingerprint=str(d["fingerprint"]), date=str(d["date"]), feasible=bool(d["feasible"]),
            inputs={str(k): str(v) for k, v in (d.get("inputs") or {}).items()}, reason=str(d.get("reason", "")),
        )


@dataclass
class Catalog:
    directory: Path
    targets: dict[str, CatalogEntry] = field(default_factory=dict)
    version: int = CATALOG_VERSION

    @property
    def path(self) -> Path:
        return self.directory / CATALOG_FILE

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "targets": {k: v.to_dict() for k, v in sorted(self.targets.items())}}


def target_dir(target_id: str) -> str:
    """The folder of a target's files, relative to the catalog: its id made file-name safe."""
    return "targets/" + re.sub(r"[^A-Za-z0-9._=,-]+", "_", target_id.replace("/", "__"))


def read_catalog(directory: str | os.PathLike) -> Catalog:
    """The catalog in `directory`; an empty one where none was written yet."""
    directory = Path(directory)
    path = directory / CATALOG_FILE
    if not path.exists():
        return Catalog(directory)
    data = read_json(path, "catalog")
    if not isinstance(data, dict) or data.get("version") != CATALOG_VERSION:
        version = data.get("version") if isinstance(data, dict) else None
        raise UserError(f"catalog {path}: unsupported version {version!r}; this autoquant reads {CATALOG_VERSION}")
    try:
        targets = {str(k): CatalogEntry.from_dict(v) for k, v in data.get("targets", {}).items()}
    except (KeyError, TypeError, ValueError) as e:
        raise UserError(f"catalog {path} is not a valid catalog: {type(e).__name__} {e}") from None
    return Catalog(directory, targets)


def write_catalog(catalog: Catalog) -> Path:
    """Atomically: a temp file, then a rename (jsonfile.write_json)."""
    return write_json(catalog.path, catalog.to_dict())


@dataclass
class SearchOutcome:
    """What one search task sends back to the driver."""

    target_id: str
    feasible: bool
    reason: str = ""  # why no plan fits
    quality: Quality | None = None
    memory_bytes: int | None = None
    latency: Latency | None = None
    formats: dict[str, str] | None = None  # the recommended plan, layer -> format [(quantizer)] (Plan.assignments)
    files: dict[str, bytes] = field(default_factory=dict)  # name -> content
    cache_files: dict[str, bytes] = field(default_factory=dict)  # the model's measured plans, for later searches
    seconds: float = 0.0
    error: str = ""  # an unexpected failure: the target stays stale
