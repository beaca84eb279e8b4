"""The files a search leaves on disk, as typed, versioned documents: one schema for the
writer (the search report) and every reader (the app, tests, scripts).

    runs/<model>/sensitivity.json         `SensitivityTable` (autoquant.sensitivity.table owns
                                          that schema; `read_sensitivity` reads it for the app)
    runs/<model>/<study>/front.json       `FrontDocument`: `write_front` / `read_front`
    runs/catalog/catalog.json             the schedule catalog: `read_catalog`

Documents are plain dataclasses; pydantic validates a file against them on the way in, so a
truncated, corrupt or older file is one `RunFileError` (a `UserError`) saying what to do,
never a traceback in the middle of the app.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pydantic

from autoquant.data import TextRef
from autoquant.errors import UserError
from autoquant.jsonfile import write_json

FRONT_FILE = "front.json"
FRONT_VERSION = 2  # 2: `layers` (every linear layer's shape), so a reader can price a plan per layer
FRONT_VERSION_KEY = "autoquant_search_version"
CATALOG_FILE = "catalog.json"


class RunFileError(UserError):
    """A run file that cannot be read as its schema says: names the file and the fix."""


# ---- front.json -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class MeasuredQuality:
    """Quality of one plan measured on held-out text against the unquantized model."""

    perplexity: float
    kl: float  # mean KL(reference || plan), nats/token
    ppl_change: float  # relative to the reference perplexity, 0.03 = +3%
    tokens: int
    text: str
    text_fingerprint: str = ""
    seconds: float = 0.0


@dataclass(frozen=True)
class LayerShape:
    """A linear layer of the model: enough to price any format on it (QuantFormat.storage_bytes)."""

    name: str
    out_features: int
    in_features: int
    role: str
    block: int | None
    tied: bool = False  # lm_head sharing the embedding: its bytes are not stored twice


@dataclass(frozen=True)
class PlanPoint:
    """One plan of the front, or a uniform baseline: its costs and, if measured, its quality."""

    label: str
    trial: int | None  # Optuna trial; None for baselines
    memory_bytes: int  # total serving memory (memory model: estimated)
    linear_bytes: int
    bits_per_weight: float
    decode_s: float | None
    prefill_s: float | None
    latency_estimated: bool
    proxy_kl: float | None  # sum of per-layer estimates the search optimised
    measured: MeasuredQuality | None  # None: proxy only, never evaluated
    summary: str  # "int4-g128-asym x180, int8-pc-sym x30"
    recommended: bool
    layers: dict[str, str] | None = None  # layer -> format, kept for measured plans
    quantizers: dict[str, str] | None = None  # layer -> gptq/awq where not rtn, with `layers`


@dataclass(frozen=True)
class BudgetsDoc:
    memory_bytes: int
    latency_s: float | None = None
    quality: str | None = None  # "kl=0.05", "ppl=+3%"


@dataclass(frozen=True)
class StudyDoc:
    name: str
    storage: str
    trials: int
    added: int
    seeded: int
    sampler: str


@dataclass(frozen=True)
class FrontDocument:
    """front.json: the whole result of one search (also what `autoquant search --json` prints)."""

    model: str
    model_spec: str | None  # how --model was given (None: the embedded default), for export
    space: str
    engine: str  # where the plans will run (autoquant.engines): the space kept to what it loads
    hardware: str
    latency_estimated: bool
    memory_estimated: bool
    batch: int
    context: int
    budgets: BudgetsDoc
    study: StudyDoc
    proxy_front_size: int
    proxy_hypervolume_ratio: float
    reference: MeasuredQuality  # the unquantized model on the same text
    baselines: list[PlanPoint]
    front: list[PlanPoint]
    recommended: PlanPoint | None
    layers: list[LayerShape]
    notes: list[str] = field(default_factory=list)
    timings_s: dict[str, float] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    calibration: TextRef | None = None  # the profile's and the gptq/awq layers' calibration text

    def to_dict(self) -> dict[str, Any]:
        return {FRONT_VERSION_KEY: FRONT_VERSION, **asdict(self)}

    @classmethod
    def from_dict(cls, data: Any, where: str = "front.json") -> FrontDocument:
        if not isinstance(data, dict):
            raise RunFileError(f"{where} is not a search result (expected a JSON object)")
        version = data.get(FRONT_VERSION_KEY)
        if version != FRONT_VERSION:
            raise RunFileError(
                f"{where} is search result version {version!r}; this autoquant reads version {FRONT_VERSION}: "
                f"re-run the same `autoquant search` to rewrite it (the study resumes, no trial is redone)"
            )
        body = {k: v for k, v in data.items() if k != FRONT_VERSION_KEY}
        try:
            return _FRONT.validate_python(body)
        except pydantic.ValidationError as e:
            first = e.errors()[0]
            at = ".".join(str(p) for p in first["loc"]) or "document"
            raise RunFileError(f"{where} is malformed at {at}: {first['msg']} ({e.error_count()} problems)") from None


_FRONT = pydantic.TypeAdapter(FrontDocument)


def write_front(path: str | os.PathLike, doc: FrontDocument) -> Path:
    """Atomically: a reader never sees half a file."""
    return write_json(path, doc.to_dict())


def _load_json(path: str | os.PathLike, what: str) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise RunFileError(f"{what} not found: {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise RunFileError(f"{what} {path} cannot be read: {e}") from None
    except json.JSONDecodeError as e:
        raise RunFileError(f"{what} {path} is truncated or not JSON ({e.msg}, line {e.lineno})") from None


def read_front(path: str | os.PathLike) -> FrontDocument:
    return FrontDocument.from_dict(_load_json(path, "search result"), str(path))


# ---- sensitivity.json ------------------------------------------------------------------------------
def read_sensitivity(path: str | os.PathLike):  # -> SensitivityTable
    """The sensitivity table through its own versioned schema; any failure is one RunFileError."""
    from autoquant.sensitivity.table import SensitivityTable

    data = _load_json(path, "sensitivity table")
    try:
        return SensitivityTable.from_dict(data)
    except UserError as e:
        raise RunFileError(f"{path}: {e}; re-run `autoquant profile` (or the search) to rewrite it") from None
    except (AttributeError, TypeError, ValueError) as e:
        raise RunFileError(f"{path}: malformed sensitivity table ({e})") from None


# ---- the schedule catalog --------------------------------------------------------------------------
@dataclass(frozen=True)
class CatalogTarget:
    """One scheduled target (model x hardware x workload): what its latest search found.

    Only what the comparison view shows, taken from autoquant.catalog's CatalogEntry.
    """

    id: str
    model: str
    hardware: str
    memory_bytes: int | None
    ppl: float | None
    delta_ppl: float | None
    kl: float | None
    decode_ms: float | None
    latency_estimated: bool
    feasible: bool
    date: str
    front: str | None  # path of the target's front.json


def read_catalog(path: str | os.PathLike) -> list[CatalogTarget]:
    """The schedule catalog's targets, read through the schema its writer uses (autoquant.catalog),
    as the rows the comparison view shows."""
    from autoquant.catalog import CATALOG_FILE as NAME
    from autoquant.catalog import read_catalog as read_schedule_catalog

    path = Path(path)
    if path.name != NAME or not path.is_file():
        raise RunFileError(f"{path} is not a schedule catalog (expected a file named {NAME})")
    try:
        catalog = read_schedule_catalog(path.parent)
    except UserError as e:
        raise RunFileError(str(e)) from None
    return [
        CatalogTarget(
            id=tid, model=e.model, hardware=e.hardware, memory_bytes=e.memory_bytes,
            ppl=e.quality.ppl if e.quality else None, delta_ppl=e.quality.delta_ppl if e.quality else None,
            kl=e.quality.kl if e.quality else None, decode_ms=e.latency.decode_ms if e.latency else None,
            latency_estimated=e.latency.estimated if e.latency else True, feasible=e.feasible, date=e.date,
            front=e.front,
        )
        for tid, e in catalog.targets.items()
    ]
