"""Which targets of a fleet spec are current, which are stale, and why."""

from __future__ import annotations

from dataclasses import dataclass, field

from autoquant.catalog import Catalog, CatalogEntry
from autoquant.schedule.fleet import FleetSpec
from autoquant.schedule.targets import ResolvedTarget, resolve_all

# What a changed input component means, in the words `status` prints.
_WHY = {
    "model": "the model changed (config or weights)",
    "hardware": "the hardware changed (spec, or the latency profile in use)",
    "space": "the search space changed",
    "budgets": "the budgets changed",
    "workload": "the workload changed",
    "search": "trials / eval tokens / measured plans changed",
    "autoquant": "autoquant's version changed",
}


@dataclass(frozen=True)
class TargetStatus:
    resolved: ResolvedTarget
    entry: CatalogEntry | None  # the catalog's record of the last search, if any
    reasons: tuple[str, ...] = field(default_factory=tuple)  # empty when current

    @property
    def id(self) -> str:
        return self.resolved.target.id

    @property
    def current(self) -> bool:
        return not self.reasons

    @property
    def state(self) -> str:
        if self.entry is None:
            return "new"
        return "current" if self.current else "stale"


def why_stale(rt: ResolvedTarget, entry: CatalogEntry | None) -> tuple[str, ...]:
    if entry is None:
        return ("never searched",)
    if entry.fingerprint == rt.fingerprint:
        return ()
    reasons = []
    for key, value in rt.inputs.items():
        old = entry.inputs.get(key)
        if old != value:
            detail = ""
            if key == "hardware":
                detail = f": now {rt.latency_source}"
            elif key in ("search", "budgets", "autoquant") and old is not None:
                detail = f": {old} -> {value}"
            reasons.append(_WHY.get(key, f"{key} changed") + detail)
    return tuple(reasons) or ("the fingerprint changed",)


def target_status(fleet: FleetSpec, catalog: Catalog) -> list[TargetStatus]:
    out = []
    for rt in resolve_all(fleet):
        entry = catalog.targets.get(rt.target.id)
        out.append(TargetStatus(rt, entry, why_stale(rt, entry)))
    return out
