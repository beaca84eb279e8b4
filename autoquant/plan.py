"""A plan: which format each linear layer is stored in, and which quantizer chooses its codes.

Versioned JSON on disk. Version 2 adds "quantizers" (layer -> rtn | gptq | awq, see
`autoquant.quantizers`); a version-1 plan loads with every layer round-to-nearest.
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
from autoquant.quantizers import AWQ_ROLES, parse_quantizer

PLAN_VERSION = 2
READABLE_VERSIONS = (1, 2)  # version 1: no quantizers, every layer round-to-nearest


@dataclass
class Plan:
    formats: dict[str, QuantFormat]  # layer name -> format
    model: str = ""  # how the model was named when the plan was made
    metadata: dict[str, Any] = field(default_factory=dict)  # search results, budgets, ...
    quantizers: dict[str, str] = field(default_factory=dict)  # layer name -> quantizer; absent = rtn

    @classmethod
    def uniform(cls, fmt: QuantFormat | str, layers: list[LinearLayer], model: str = "", quantizer: str = "rtn") -> Plan:
        fmt = QuantFormat.parse(fmt) if isinstance(fmt, str) else fmt
        meta = {"uniform": str(fmt) if quantizer == "rtn" else f"{fmt} ({quantizer})"}
        # awq only where its scales fold into the op before (q/k/v, gate/up, down); rtn elsewhere
        takes = [l for l in layers if not fmt.is_float and (quantizer != "awq" or l.role in AWQ_ROLES)]
        quantizers = {} if quantizer == "rtn" else {l.name: quantizer for l in takes}
        return cls({layer.name: fmt for layer in layers}, model, meta, quantizers)

    def format_of(self, layer: LinearLayer | str) -> QuantFormat:
        return self.formats[layer if isinstance(layer, str) else layer.name]

    def quantizer_of(self, layer: LinearLayer | str) -> str:
        """rtn for float layers and for layers the plan names no quantizer for."""
        name = layer if isinstance(layer, str) else layer.name
        return "rtn" if self.formats[name].is_float else self.quantizers.get(name, "rtn")

    def weight_bytes(self, layers: list[LinearLayer]) -> int:
        """Bytes of the linear weights under this plan (biases excluded; see memory model)."""
        return sum(self.format_of(l).storage_bytes(l.out_features, l.in_features) for l in layers)

    def bits_per_weight(self, layers: list[LinearLayer]) -> float:
        return 8.0 * self.weight_bytes(layers) / sum(l.params for l in layers)

    def summary(self) -> str:
        """'int4-g128-asym x180, int8-pc-sym x30' style counts, most common first."""
        counts = Counter(
            str(f) if self.quantizer_of(n) == "rtn" else f"{f} {self.quantizer_of(n)}" for n, f in self.formats.items()
        )
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
            "quantizers": {name: self.quantizer_of(name) for name in self.formats},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Plan:
        version = d.get("autoquant_plan_version")
        if version not in READABLE_VERSIONS:
            raise UserError(f"unsupported plan version {version!r}; this autoquant reads versions 1 and {PLAN_VERSION}")
        try:
            formats = {name: QuantFormat.parse(s) for name, s in d["layers"].items()}
            quantizers = {name: parse_quantizer(q) for name, q in (d.get("quantizers") or {}).items()}
        except (KeyError, AttributeError, ValueError) as e:
            raise UserError(f"malformed plan file: {e}") from None
        quantizers = {n: q for n, q in quantizers.items() if q != "rtn" and n in formats and not formats[n].is_float}
        return cls(formats, d.get("model", ""), d.get("metadata", {}), quantizers)

    def save(self, path: str | os.PathLike) -> Path:
        return write_json(path, self.to_dict(), indent=2)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Plan:
        return cls.from_dict(read_json(path, "plan file"))


def resolve_plan(spec: str, layers: list[LinearLayer], model: str = "", quantizer: str | None = None) -> Plan:
    """A uniform format string (`int4-g128-asym`) or the path of a plan file.

    `quantizer` (--quantizer) applies to a uniform plan; a plan file names its own.
    """
    if os.path.exists(spec) or spec.endswith(".json"):
        if quantizer is not None:
            raise UserError("--quantizer applies to a uniform --plan (a format); a plan file names its own quantizers")
        plan = Plan.load(spec)
        plan.validate(layers)
        return plan
    try:
        q = parse_quantizer(quantizer or "rtn")
    except ValueError as e:
        raise UserError(f"--quantizer: {e}") from None
    try:
        return Plan.uniform(QuantFormat.parse(spec), layers, model, q)
    except ValueError as e:
        raise UserError(f"--plan: {e}, or the path of a plan file") from None
