"""A plan: which format each linear layer is stored in. Versioned JSON on disk.

Embeddings always stay in the model's 16-bit dtype (they are a lookup table, not a
matmul); every discovered linear layer, lm_head included, has an entry.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autoquant.errors import UserError
from autoquant.formats import QuantFormat
from autoquant.jsonfile import read_json, write_json
from autoquant.layers import LinearLayer

PLAN_VERSION = 1


@dataclass
class Plan:
    formats: dict[str, QuantFormat]  # layer name -> format
    model: str = ""  # how the model was named when the plan was made
    metadata: dict[str, Any] = field(default_factory=dict)  # search results, budgets, ...

    @classmethod
    def uniform(cls, fmt: QuantFormat | str, layers: list[LinearLayer], model: str = "") -> Plan:
        fmt = QuantFormat.parse(fmt) if isinstance(fmt, str) else fmt
        return cls({layer.name: fmt for layer in layers}, model, {"uniform": str(fmt)})

    def format_of(self, layer: LinearLayer | str) -> QuantFormat:
        return self.formats[layer if isinstance(layer, str) else layer.name]

    def weight_bytes(self, layers: list[LinearLayer]) -> int:
        """Bytes of the linear weights under this plan (biases excluded; see memory model)."""
        return sum(self.format_of(l).storage_bytes(l.out_features, l.in_features) for l in layers)

    def bits_per_weight(self, layers: list[LinearLayer]) -> float:
        return 8.0 * self.weight_bytes(layers) / sum(l.params for l in layers)

    def summary(self) -> str:
        """'int4-g128-asym x180, int8-pc-sym x30' style counts, most common first."""
        counts = Counter(str(f) for f in self.formats.values())
        return ", ".join(f"{f} x{n}" for f, n in counts.most_common())

    def validate(self, layers: list[LinearLayer]) -> None:
        names = {l.name for l in layers}
        missing = names - self.formats.keys()
        unknown = self.formats.keys() - names
        if missing or unknown:
            parts = []
            if missing:
                parts.append(f"{len(missing)} layers missing (e.g. {sorted(missing)[0]})")
            if unknown:
                parts.append(f"{len(unknown)} unknown layers (e.g. {sorted(unknown)[0]})")
            raise UserError(f"plan does not match the model: {'; '.join(parts)}")

    # ---- file form -------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "autoquant_plan_version": PLAN_VERSION,
            "model": self.model,
            "metadata": self.metadata,
            "layers": {name: str(f) for name, f in self.formats.items()},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Plan:
        version = d.get("autoquant_plan_version")
        if version != PLAN_VERSION:
            raise UserError(f"unsupported plan version {version!r}; this autoquant reads version {PLAN_VERSION}")
        try:
            formats = {name: QuantFormat.parse(s) for name, s in d["layers"].items()}
        except (KeyError, AttributeError, ValueError) as e:
            raise UserError(f"malformed plan file: {e}") from None
        return cls(formats, d.get("model", ""), d.get("metadata", {}))

    def save(self, path: str | os.PathLike) -> Path:
        return write_json(path, self.to_dict(), indent=2)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Plan:
        return cls.from_dict(read_json(path, "plan file"))


def resolve_plan(spec: str, layers: list[LinearLayer], model: str = "") -> Plan:
    """A uniform format string (`int4-g128-asym`) or the path of a plan file."""
    if os.path.exists(spec) or spec.endswith(".json"):
        plan = Plan.load(spec)
        plan.validate(layers)
        return plan
    try:
        return Plan.uniform(QuantFormat.parse(spec), layers, model)
    except ValueError as e:
        raise UserError(f"{{plan}}: {e}, or the path of a plan file", params=("plan",)) from None
