"""CHANGES.md: one section appended by every `schedule run`, saying what its searches changed.

    ## 2026-12-05 01:10 UTC: 2 searched, 6 current (fleet.yaml, 412 s)
    ### New targets
    - `default/h200/b1-c4096/memory=0.82GB`: 0.812 GB, ppl 17.21 (+1.62%), KL 0.0153, decode 0.31 ms (estimated)
    ### Changed recommendations
    - `...`: plan changed (12 of 211 layers), memory 0.815 -> 0.809 GB (-0.7%), ppl +1.9% -> +1.6%, KL ...
    ### Became infeasible / Feasible again / Unchanged / Failed
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from autoquant.catalog import CHANGES_FILE, CatalogEntry, SearchOutcome

if TYPE_CHECKING:  # the runner imports this module; only its types are needed here
    from autoquant.schedule.status import TargetStatus

KINDS = ("new", "changed", "infeasible", "feasible again", "unchanged")
_HEADINGS = {"new": "New targets", "changed": "Changed recommendations", "infeasible": "Became infeasible",
             "feasible again": "Feasible again", "unchanged": "Re-searched, same recommendation"}


@dataclass(frozen=True)
class Change:
    target_id: str
    kind: str  # one of KINDS
    text: str  # the Markdown line's body


def _summary(e: CatalogEntry) -> str:
    if not e.feasible:
        return "infeasible: " + (e.reason.split(";")[0] or "no plan fits")
    q, lat = e.quality, e.latency
    label = "estimated" if lat.estimated else "measured"
    return (f"{e.memory_bytes / 1e9:.3f} GB, ppl {q.ppl:.2f} ({q.delta_ppl * 100:+.2f}%), KL {q.kl:.4f}, "
            f"decode {lat.decode_ms:.2f} ms ({label})")


def _deltas(old: CatalogEntry, new: CatalogEntry) -> str:
    parts = []
    if old.memory_bytes and new.memory_bytes and old.memory_bytes != new.memory_bytes:
        parts.append(f"memory {old.memory_bytes / 1e9:.3f} -> {new.memory_bytes / 1e9:.3f} GB "
                     f"({(new.memory_bytes / old.memory_bytes - 1) * 100:+.1f}%)")
    if old.quality and new.quality:
        if abs(old.quality.delta_ppl - new.quality.delta_ppl) > 5e-5:
            parts.append(f"ppl {old.quality.delta_ppl * 100:+.2f}% -> {new.quality.delta_ppl * 100:+.2f}%")
        if abs(old.quality.kl - new.quality.kl) > 5e-5:
            parts.append(f"KL {old.quality.kl:.4f} -> {new.quality.kl:.4f}")
    if old.latency and new.latency and abs(old.latency.decode_ms - new.latency.decode_ms) > 5e-3:
        parts.append(f"decode {old.latency.decode_ms:.2f} -> {new.latency.decode_ms:.2f} ms")
    return ", ".join(parts)


def compare(target_id: str, old: CatalogEntry | None, new: CatalogEntry,
            old_formats: dict[str, str] | None, new_formats: dict[str, str] | None) -> Change:
    """How a target's new entry differs from its previous one."""
    if old is None:
        return Change(target_id, "new", _summary(new))
    if old.feasible and not new.feasible:
        return Change(target_id, "infeasible", _summary(new))
    if not old.feasible and new.feasible:
        return Change(target_id, "feasible again", _summary(new))
    if not new.feasible:
        return Change(target_id, "unchanged", _summary(new))
    deltas = _deltas(old, new)
    if old_formats is not None and new_formats is not None and old_formats != new_formats:
        moved = sum(old_formats.get(k) != v for k, v in new_formats.items())
        return Change(target_id, "changed", f"plan changed ({moved} of {len(new_formats)} layers)"
                      + (f", {deltas}" if deltas else "") + f"; now {_summary(new)}")
    if deltas:
        return Change(target_id, "changed", f"same plan, {deltas}")
    return Change(target_id, "unchanged", _summary(new))


def render_section(spec_path: str, statuses: list[TargetStatus], outcomes: list[SearchOutcome],
                   changes: list[Change], seconds: float, stopped: str = "", now: _dt.datetime | None = None) -> str:
    now = now or _dt.datetime.now(_dt.timezone.utc)
    searched = {o.target_id for o in outcomes}
    current = sum(1 for s in statuses if s.current and s.id not in searched)
    head = (f"## {now:%Y-%m-%d %H:%M} UTC: {len(outcomes)} searched, {current} current "
            f"({Path(spec_path).name}, {seconds:.0f} s)")
    lines = [head, ""]
    if stopped:
        lines += [f"The run stopped ({stopped}); the targets it did not finish are still stale.", ""]
    elif not outcomes:
        lines += ["Nothing was stale: no search ran.", ""]
    why = {s.id: "; ".join(s.reasons) for s in statuses}
    for kind in KINDS:
        items = [c for c in changes if c.kind == kind]
        if not items:
            continue
        lines += [f"### {_HEADINGS[kind]}", ""]
        for c in items:
            reason = "" if kind == "new" else f" (stale: {why.get(c.target_id, '?')})"
            lines.append(f"- `{c.target_id}`: {c.text}{reason}")
        lines.append("")
    failed = [o for o in outcomes if o.error]
    if failed:
        lines += ["### Failed (still stale; re-run to retry)", ""]
        lines += [f"- `{o.target_id}`: {o.error}" for o in failed]
        lines.append("")
    return "\n".join(lines) + "\n"


def append_changes(directory: Path, spec_path: str, statuses: list[TargetStatus], outcomes: list[SearchOutcome],
                   changes: list[Change], seconds: float, stopped: str = "") -> Path:
    """Append this run's section; the file starts with a title the first time."""
    path = Path(directory) / CHANGES_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    fresh = not path.exists()
    with open(path, "a", encoding="utf-8") as fh:
        if fresh:
            fh.write("# Catalog changes\n\nOne section per `autoquant schedule run`, newest last.\n\n")
        fh.write(render_section(spec_path, statuses, outcomes, changes, seconds, stopped))
    return path
