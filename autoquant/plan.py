"""A plan: which format each linear layer is stored in, and by which quantizer its codes are
chosen (`autoquant.quantizers`: rtn, gptq, awq). Versioned JSON on disk.

Embeddings always stay in the model's 16-bit dtype (they are a lookup table, not a
matmul); every discovered linear layer, lm_head included, has an entry.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autoquant.data import TextRef, TextSource, calibration_text
from autoquant.errors import UserError
from autoquant.formats import QuantFormat
from autoquant.jsonfile import read_json, write_json
from autoquant.layers import LinearLayer
from autoquant.quantizers import CALIBRATED, parse_quantizer, quantizer_for_role

PLAN_VERSION = 2  # 2 added "quantizers"; version-1 plans load as round-to-nearest throughout


@dataclass
class Plan:
    formats: dict[str, QuantFormat]  # layer name -> format
    model: str = ""  # how the model was named when the plan was made
    metadata: dict[str, Any] = field(default_factory=dict)  # search results, budgets, ...
    quantizers: dict[str, str] = field(default_factory=dict)  # layer name -> gptq/awq; absent: rtn
    # The text its gptq/awq layers were calibrated on when the plan was made (search, evaluate):
    # export calibrates on the same text, so the checkpoint is the plan that was measured.
    calibration: TextRef | None = None

    @classmethod
    def uniform(cls, fmt: QuantFormat | str, layers: list[LinearLayer], model: str = "",
                quantizer: str = "rtn") -> Plan:
        """Every layer in `fmt`; `quantizer` where it applies (`quantizer_for_role`: awq leaves
        o_proj and lm_head to rtn), recorded per layer."""
        fmt = QuantFormat.parse(fmt) if isinstance(fmt, str) else fmt
        quantizer = parse_quantizer(quantizer)
        if quantizer != "rtn" and (fmt.is_float or fmt.is_gguf):
            raise UserError(f"{{quantizer}}: {quantizer} quantizes autoquant's integer formats, not {fmt}",
                            params=("quantizer",))
        by_layer = {l.name: quantizer_for_role(quantizer, l.role) for l in layers}
        quantizers = {name: q for name, q in by_layer.items() if q != "rtn"}
        meta = {"uniform": str(fmt)} | ({"quantizer": quantizer} if quantizer != "rtn" else {})
        return cls({layer.name: fmt for layer in layers}, model, meta, quantizers)

    def format_of(self, layer: LinearLayer | str) -> QuantFormat:
        return self.formats[layer if isinstance(layer, str) else layer.name]

    def quantizer_of(self, layer: LinearLayer | str) -> str:
        return self.quantizers.get(layer if isinstance(layer, str) else layer.name, "rtn")

    @property
    def calibrated_layers(self) -> dict[str, str]:
        """Layer -> gptq/awq for the layers in an integer format whose codes need calibration text."""
        return {n: q for n, q in self.quantizers.items() if q in CALIBRATED and not self.formats[n].is_float}

    @property
    def calibrated(self) -> bool:
        """Whether quantizing needs calibration text (a gptq or awq layer in an integer format)."""
        return bool(self.calibrated_layers)

    @property
    def quantizer_digest(self) -> str:
        """A short digest of the calibrated layers' quantizers and their calibration text; "" for
        round-to-nearest throughout. Keys a measured plan together with its formats."""
        chosen = self.calibrated_layers
        if not chosen:
            return ""
        keyed: dict[str, Any] = dict(chosen)
        if self.calibration is not None:  # other text, other codes, other quality
            keyed = {"layers": chosen, "calibration": self.calibration.fingerprint}
        return hashlib.sha256(json.dumps(keyed, sort_keys=True).encode()).hexdigest()[:12]

    def assignments(self) -> dict[str, str]:
        """Layer -> its format and, where calibrated, quantizer: `int4-g128-asym (gptq)`. What a
        comparison of two plans compares (the schedule's catalog of changes)."""
        chosen = self.calibrated_layers
        return {n: uniform_label(f, chosen.get(n, "rtn")) for n, f in self.formats.items()}

    def weight_bytes(self, layers: list[LinearLayer]) -> int:
        """Bytes of the linear weights under this plan (biases excluded; see memory model)."""
        return sum(self.format_of(l).storage_bytes(l.out_features, l.in_features) for l in layers)

    def bits_per_weight(self, layers: list[LinearLayer]) -> float:
        return 8.0 * self.weight_bytes(layers) / sum(l.params for l in layers)

    def summary(self) -> str:
        """'int4-g128-asym x180, int8-pc-sym x30' style counts, most common first."""
        counts = Counter(str(f) if self.quantizer_of(n) == "rtn" or f.is_float else f"{f} ({self.quantizer_of(n)})"
                         for n, f in self.formats.items())
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
        } | ({"calibration": {"text": self.calibration.name, "fingerprint": self.calibration.fingerprint}}
             if self.calibration is not None and self.calibrated else {})

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Plan:
        version = d.get("autoquant_plan_version")
        if version not in (1, PLAN_VERSION):
            raise UserError(f"unsupported plan version {version!r}; this autoquant reads versions 1 to {PLAN_VERSION}")
        try:
            formats = {name: QuantFormat.parse(s) for name, s in d["layers"].items()}
            quantizers = {name: parse_quantizer(q) for name, q in d.get("quantizers", {}).items()
                          if parse_quantizer(q) != "rtn"}
            cal = d.get("calibration")
            calibration = None if cal is None else TextRef(str(cal["text"]), str(cal["fingerprint"]))
        except (KeyError, AttributeError, ValueError, TypeError) as e:
            raise UserError(f"malformed plan file: {e}") from None
        if quantizers.keys() - formats.keys():
            raise UserError(f"malformed plan file: a quantizer for unknown layer {sorted(quantizers.keys() - formats.keys())[0]}")
        return cls(formats, d.get("model", ""), d.get("metadata", {}), quantizers, calibration)

    def save(self, path: str | os.PathLike) -> Path:
        return write_json(path, self.to_dict(), indent=2)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Plan:
        return cls.from_dict(read_json(path, "plan file"))


def calibration_source(plan: Plan, path: str | None = None) -> tuple[TextSource, str | None]:
    """The text to calibrate `plan`'s gptq/awq layers on, and a note when it is not the text the
    plan was made with: `path` when given (e.g. --calib); else the plan's recorded text (its file
    read again and its fingerprint checked); else wikitext-2 validation, the default everywhere.
    UserError when the recorded text cannot be found as it was: no silent recalibration."""
    rec = plan.calibration if plan.calibrated else None
    if path is not None:
        src = calibration_text(path)
        if rec is not None and rec.fingerprint != src.fingerprint:
            return src, (f"the plan's gptq/awq layers were measured calibrated on {rec.name}; "
                         f"calibrating on {src.name} instead, so its quality may differ from the search's")
        return src, None
    default = calibration_text()
    if rec is None or rec.fingerprint == default.fingerprint:
        return default, None
    if Path(rec.name).is_file():
        src = calibration_text(rec.name)
        if src.fingerprint == rec.fingerprint:
            return src, None
    raise UserError(f"the plan's gptq/awq layers were calibrated on {rec.name} (sha256 {rec.fingerprint}...), "
                    "which is not there as it was; pass that text with {calib}", params=("calib",))


def uniform_label(fmt: QuantFormat | str, quantizer: str = "rtn") -> str:
    """How a uniform plan is named in fronts and reports: `int4-g128-asym`, `int4-g128-asym (gptq)`."""
    return str(fmt) if quantizer == "rtn" else f"{fmt} ({quantizer})"


def parse_uniform_label(label: str) -> tuple[QuantFormat, str]:
    fmt, _, rest = label.partition(" (")
    return QuantFormat.parse(fmt), rest.rstrip(")") or "rtn"


def resolve_plan(spec: str, layers: list[LinearLayer], model: str = "", quantizer: str | None = None) -> Plan:
    """A uniform format string (`int4-g128-asym`) or the path of a plan file; `quantizer`
    (`--quantizer`) applies to uniform plans only: a plan file records its own."""
    if os.path.exists(spec) or spec.endswith(".json"):
        if quantizer not in (None, "rtn"):
            raise UserError("{quantizer} applies to a uniform plan; a plan file names each layer's quantizer",
                            params=("quantizer",))
        plan = Plan.load(spec)
        plan.validate(layers)
        return plan
    try:
        fmt = QuantFormat.parse(spec)
    except ValueError as e:
        raise UserError(f"{{plan}}: {e}, or the path of a plan file", params=("plan",)) from None
    try:
        quantizer = parse_quantizer(quantizer or "rtn")
    except ValueError as e:
        raise UserError(f"{{quantizer}}: {e}", params=("quantizer",)) from None
    return Plan.uniform(fmt, layers, model, quantizer)
