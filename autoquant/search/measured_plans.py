"""Measured plans of one model, shared by every search of it: one JSON-lines file per model.

A plan's measured quality depends on the model, the plan's formats and quantizers, the evaluation
text and token count, the device and autoquant's version (how it quantizes), not on the GPU the search plans for, its
budgets or its study. A study keeps its own measurements (`SearchStudy.measurements`); this
file lets other studies of the same model reuse them: the schedule's targets of one model
(three GPUs x two budgets measure the same uniform baselines and mostly the same front plans)
read and extend it instead of measuring again.

    <AUTOQUANT_CACHE>/sensitivity/<model fingerprint>-measured-plans.jsonl

It sits beside the model's sensitivity profile, so whatever ships a model's profile to another
node (`autoquant.schedule.runner`) ships it too. One line a measurement:

    {"key": "<digest of formats, text, tokens, device, version>", "measured": {...}}

Append-only; a torn last line (a kill mid-write) is skipped and measured again.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from autoquant.jsonfile import append_lines, ends_mid_line, read_lines
from autoquant.plan import Plan

SUFFIX = "-measured-plans.jsonl"


def measured_plans_path(model_fingerprint: str, root: str | os.PathLike | None = None) -> Path:
    from autoquant.sensitivity.cache import default_cache_dir

    return Path(root if root is not None else default_cache_dir()) / f"{model_fingerprint}{SUFFIX}"


def _version() -> str:
    """The quantizers' version: a new autoquant may quantize differently, so it measures afresh."""
    from importlib import metadata

    from autoquant.sensitivity import METHOD_VERSION

    try:
        return f"{metadata.version('autoquant')}+{METHOD_VERSION}"
    except metadata.PackageNotFoundError:
        return f"unknown+{METHOD_VERSION}"


class MeasuredPlans:
    """Measurements of one model's plans, read once, appended as they are made."""

    def __init__(self, path: str | os.PathLike, device: str) -> None:
        self.path = Path(path)
        self.device = device
        self.version = _version()
        self._known: dict[str, dict[str, Any]] = {}
        self._read()

    def _read(self) -> None:
        read_lines(self.path, self._parse, "a run killed mid-write; those plans are measured again")

    def _parse(self, rec: dict) -> None:
        self._known[str(rec["key"])] = dict(rec["measured"])

    def key(self, plan: Plan, text_fingerprint: str, eval_tokens: int) -> str:
        data = {"formats": {name: str(f) for name, f in sorted(plan.formats.items())}, "text": text_fingerprint,
                "tokens": eval_tokens, "device": self.device, "version": self.version}
        if plan.quantizer_digest:  # rtn-only plans keep the keys they had before quantizers
            data["quantizers"] = plan.quantizer_digest
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:24]

    def get(self, plan: Plan, text_fingerprint: str, eval_tokens: int) -> dict[str, Any] | None:
        found = self._known.get(self.key(plan, text_fingerprint, eval_tokens))
        return None if found is None else dict(found)

    def add(self, plan: Plan, text_fingerprint: str, eval_tokens: int, measured: dict[str, Any]) -> None:
        key = self.key(plan, text_fingerprint, eval_tokens)
        # new_line_first: another process's torn line must not swallow this one
        append_lines(self.path, [json.dumps({"key": key, "measured": measured})], new_line_first=ends_mid_line(self.path))
        self._known[key] = dict(measured)

    def __len__(self) -> int:
        return len(self._known)
