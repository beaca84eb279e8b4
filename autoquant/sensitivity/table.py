"""The sensitivity table: what quantizing each layer in each format costs, in quality.

One `SensitivityEntry` per (layer, format, quantizer) the search space allows (16-bit formats
cost nothing and are not stored; quantizers other than round-to-nearest, `autoquant.quantizers`,
quantize the layer alone from its calibration statistics, see `quantizers.single`). Every entry has the normalised proxy error; the measured
sample also has the KL and perplexity change of the full model with only that layer
quantized. The measured pairs calibrate the proxy (`proxy_to_kl`) and tell how far to
trust it (`spearman`); `estimated_kl` is what the search sums over a plan's layers.

Saved as versioned JSON (one row per entry, plus the run's metadata).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from autoquant.errors import UserError
from autoquant.formats import QuantFormat
from autoquant.jsonfile import read_json, write_json

TABLE_VERSION = 2  # 2 added each entry's quantizer; version-1 tables load as round-to-nearest
# Measured KL below this is at the measurement's noise floor (the reference log-probabilities
# are kept in fp16, see autoquant.quality): such pairs rank poorly and are left out of the fit.
KL_NOISE_FLOOR = 2e-5


@dataclass
class SensitivityEntry:
    layer: str
    format: str  # canonical QuantFormat string
    proxy: float  # normalised proxy error (comparable across layers)
    kl: float | None = None  # measured KL (nats/token), only this layer quantized; None if not measured
    ppl_change: float | None = None  # relative perplexity change when measured (0.01 = +1%)
    quantizer: str = "rtn"  # how the layer's codes were chosen (autoquant.quantizers)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.layer, self.format, self.quantizer)

    @property
    def variant(self) -> str:
        """`int4-g128-asym`, or `int4-g128-asym (gptq)`: how tables and plots label it."""
        return variant_label(self.format, self.quantizer)

    @property
    def measured(self) -> bool:
        return self.kl is not None


@dataclass(frozen=True)
class Calibration:
    """How the proxy maps to measured KL over the measured pairs."""

    proxy_to_kl: float
    spearman: float | None
    spearman_by_format: dict[str, float | None]
    measured: int
    # per quantizer other than rtn, fitted on its own measured entries: gptq/awq are fitted to the
    # statistics their proxy is computed on, so their proxy is optimistic; their measured KL is not
    # (the layer is quantized from statistics without the measurement's tokens: worker.py)
    proxy_to_kl_by_quantizer: dict[str, float] = field(default_factory=dict)


def _spearman(x: list[float], y: list[float]) -> float | None:
    if len(x) < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return None
    return float(spearmanr(x, y).statistic)


def calibrate(entries: list[SensitivityEntry], prior: float = 1.0) -> Calibration:
    """Fit KL ~= a * proxy on the measured entries, and their rank agreement.

    `a` is the geometric mean of KL / proxy (a least-squares fit in log space): every
    measured pair counts alike, whatever its magnitude, and one noisy giant cannot drag
    the scale. Pairs whose KL is at the measurement's noise floor are left out of the fit
    (not of the rank correlation). With fewer than two usable pairs, `prior` is kept.
    `a` is fitted on rtn's entries (all, when fewer than two are rtn), each other quantizer
    gets its own scale from its own entries (`a` when it has fewer than two); the rank
    agreement compares the scaled proxies.
    """
    measured = [e for e in entries if e.kl is not None]
    usable = [e for e in measured if e.kl > KL_NOISE_FLOOR and e.proxy > 0]
    rtn = [e for e in usable if e.quantizer == "rtn"]
    a = _fit(rtn if len(rtn) >= 2 else usable, prior)
    by_quantizer = {q: _fit([e for e in usable if e.quantizer == q], a)
                    for q in sorted({e.quantizer for e in entries} - {"rtn"})}
    by_format: dict[str, float | None] = {}
    for variant in sorted({e.variant for e in measured}):
        group = [e for e in measured if e.variant == variant]
        by_format[variant] = _spearman([e.proxy for e in group], [e.kl for e in group])
    scale = lambda e: by_quantizer.get(e.quantizer, a) * e.proxy  # noqa: E731  (the estimate before measuring)
    rho = _spearman([scale(e) for e in measured], [e.kl for e in measured])
    return Calibration(a, rho, by_format, len(measured), by_quantizer)


def _fit(usable: list[SensitivityEntry], prior: float) -> float:
    """Geometric mean of KL / proxy; `prior` with fewer than two entries."""
    if len(usable) < 2:
        return prior
    return math.exp(float(np.mean([math.log(e.kl / e.proxy) for e in usable])))


@dataclass
class SensitivityTable:
    model: str
    model_fingerprint: str
    calib_fingerprint: str
    method_version: str
    layers: list[str]  # every profiled layer, in model order
    formats: list[str]  # every quantized format profiled, as the space orders them
    entries: dict[tuple[str, str, str], SensitivityEntry]  # (layer, format, quantizer) ->
    proxy_to_kl: float  # fitted from the measured rtn pairs: KL ~= proxy_to_kl * proxy
    spearman: float | None  # rank agreement proxy vs measured KL over the measured pairs
    # ---- how it was made (for `profile show`, the app and reproducibility) ----
    normalisation: str = "fisher"  # which proxy normalisation `proxy` holds (see proxy.py)
    calibrated: bool = True  # False: no measured pairs, proxy_to_kl is the prior, not a fit
    spearman_by_format: dict[str, float | None] = field(default_factory=dict)
    roles: dict[str, str] = field(default_factory=dict)  # layer -> role
    calib_name: str = ""
    calib_tokens: int = 0
    measure_tokens: int = 0
    reference_perplexity: float | None = None  # of the unquantized model on the measurement text
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase of the run that made it
    executor: str = ""  # where that run's work ran ("" when everything came from the cache)
    notes: list[str] = field(default_factory=list)
    quantizers: list[str] = field(default_factory=lambda: ["rtn"])  # every quantizer profiled
    # worker seconds the proxies took per quantizer (summed over layers and formats, cache included)
    quantizer_seconds: dict[str, float] = field(default_factory=dict)
    proxy_to_kl_by_quantizer: dict[str, float] = field(default_factory=dict)  # gptq/awq: their own fit

    def scale(self, quantizer: str) -> float:
        """What the proxy of `quantizer`'s entries is multiplied by to estimate their KL."""
        return self.proxy_to_kl_by_quantizer.get(quantizer, self.proxy_to_kl)

    # ---- queries ----------------------------------------------------------------
    def entry(self, layer: str, fmt: QuantFormat | str, quantizer: str = "rtn") -> SensitivityEntry:
        key = (layer, _canonical(fmt), quantizer)
        try:
            return self.entries[key]
        except KeyError:
            raise KeyError(f"no sensitivity entry for {layer} in {variant_label(key[1], quantizer)} (profiled formats: "
                           f"{', '.join(self.formats)}; quantizers: {', '.join(self.quantizers)})") from None

    def has(self, layer: str, fmt: QuantFormat | str, quantizer: str = "rtn") -> bool:
        return (layer, _canonical(fmt), quantizer) in self.entries

    def estimated_kl(self, layer: str, fmt: QuantFormat | str, quantizer: str = "rtn") -> float:
        """Measured KL if present, else the calibrated proxy; 0 for 16-bit formats."""
        f = fmt if isinstance(fmt, QuantFormat) else QuantFormat.parse(fmt)
        if f.is_float:
            return 0.0
        e = self.entry(layer, f, quantizer)
        return e.kl if e.kl is not None else self.scale(quantizer) * e.proxy

    def best_quantizer(self, layer: str, fmt: QuantFormat | str, allowed: Sequence[str]) -> tuple[str, float]:
        """The allowed, profiled quantizer of least estimated KL for `layer` in `fmt` (rtn on a
        tie: it needs no calibration), and that KL. rtn is always a candidate."""
        f = fmt if isinstance(fmt, QuantFormat) else QuantFormat.parse(fmt)
        if f.is_float:
            return "rtn", 0.0
        candidates = [q for q in allowed if q != "rtn" and self.has(layer, f, q)]
        return min([("rtn", self.estimated_kl(layer, f))] + [(q, self.estimated_kl(layer, f, q)) for q in candidates],
                   key=lambda qk: qk[1])

    def measured_entries(self) -> list[SensitivityEntry]:
        return [e for e in self.entries.values() if e.kl is not None]

    def layer_ranking(self) -> list[tuple[str, float]]:
        """Layers by their worst-case estimated KL over the profiled formats, most sensitive first."""
        worst: dict[str, float] = {}
        for (layer, fmt, quantizer) in self.entries:
            worst[layer] = max(worst.get(layer, 0.0), self.estimated_kl(layer, fmt, quantizer))
        return sorted(worst.items(), key=lambda kv: -kv[1])

    # ---- file form ---------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        meta = {k: v for k, v in asdict(self).items() if k != "entries"}
        return {
            "autoquant_sensitivity_version": TABLE_VERSION,
            **meta,
            "entries": [asdict(e) for e in self.entries.values()],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SensitivityTable:
        version = d.get("autoquant_sensitivity_version")
        if version not in (1, TABLE_VERSION):
            raise UserError(f"unsupported sensitivity table version {version!r}; this autoquant reads 1 to {TABLE_VERSION}")
        d = dict(d)
        d.pop("autoquant_sensitivity_version")
        try:
            entries = {e.key: e for e in (SensitivityEntry(**e) for e in d.pop("entries"))}
            return cls(entries=entries, **d)
        except (KeyError, TypeError) as e:
            raise UserError(f"malformed sensitivity table: {e}") from None

    def save(self, path: str | os.PathLike) -> Path:
        return write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> SensitivityTable:
        return cls.from_dict(read_json(path, "sensitivity table", " (run `autoquant profile` first)"))


def variant_label(fmt: str, quantizer: str) -> str:
    return fmt if quantizer == "rtn" else f"{fmt} ({quantizer})"


def _canonical(fmt: QuantFormat | str) -> str:
    return str(fmt if isinstance(fmt, QuantFormat) else QuantFormat.parse(fmt))
