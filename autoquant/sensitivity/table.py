"""The sensitivity table: what quantizing each layer in each format costs, in quality.

One `SensitivityEntry` per (layer, format) the search space allows (16-bit formats cost
nothing and are not stored). Every entry has the normalised proxy error; the measured
sample also has the KL and perplexity change of the full model with only that layer
quantized. The measured pairs calibrate the proxy (`proxy_to_kl`) and tell how far to
trust it (`spearman`); `estimated_kl` is what the search sums over a plan's layers.

Saved as versioned JSON (one row per entry, plus the run's metadata).
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from autoquant.errors import UserError
from autoquant.formats import QuantFormat
from autoquant.jsonfile import read_json, write_json

TABLE_VERSION = 1
# Measured KL below this is at the measurement's noise floor (the reference log-probabilities
# are kept in fp16, see autoquant.evaluate): such pairs rank poorly and are left out of the fit.
KL_NOISE_FLOOR = 2e-5


@dataclass
class SensitivityEntry:
    layer: str
    format: str  # canonical QuantFormat string
    proxy: float  # normalised proxy error (comparable across layers)
    kl: float | None = None  # measured KL (nats/token), only this layer quantized; None if not measured
    ppl_change: float | None = None  # relative perplexity change when measured (0.01 = +1%)
    quantizer: str = "rtn"  # autoquant.quantizers: how this entry's codes were chosen

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
    """
    measured = [e for e in entries if e.kl is not None]
    usable = [e for e in measured if e.kl > KL_NOISE_FLOOR and e.proxy > 0]
    a = prior
    if len(usable) >= 2:
        a = math.exp(float(np.mean([math.log(e.kl / e.proxy) for e in usable])))
    by_format: dict[str, float | None] = {}
    for fmt in sorted({e.format for e in measured}):
        group = [e for e in measured if e.format == fmt]
        by_format[fmt] = _spearman([e.proxy for e in group], [e.kl for e in group])
    rho = _spearman([e.proxy for e in measured], [e.kl for e in measured])
    return Calibration(a, rho, by_format, len(measured))


def best_quantizers(
    entries: list[SensitivityEntry], proxy_to_kl: float
) -> tuple[dict[tuple[str, str], SensitivityEntry], list[SensitivityEntry]]:
    """Per (layer, format), the entry of least estimated KL (measured, else the calibrated proxy),
    and the rest. Quantizers of one format cost the same bytes and time: only quality tells."""
    best: dict[tuple[str, str], SensitivityEntry] = {}
    rest = []

    def kl(e: SensitivityEntry) -> float:
        return e.kl if e.kl is not None else proxy_to_kl * e.proxy

    for e in entries:
        key = (e.layer, e.format)
        if key not in best:
            best[key] = e
        elif kl(e) < kl(best[key]):
            rest.append(best[key])
            best[key] = e
        else:
            rest.append(e)
    return best, rest


@dataclass
class SensitivityTable:
    model: str
    model_fingerprint: str
    calib_fingerprint: str
    method_version: str
    layers: list[str]  # every profiled layer, in model order
    formats: list[str]  # every quantized format profiled, as the space orders them
    entries: dict[tuple[str, str], SensitivityEntry]  # (layer, format) -> its best quantizer's entry
    proxy_to_kl: float  # fitted from the measured pairs: KL ~= proxy_to_kl * proxy
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
    alternatives: list[SensitivityEntry] = field(default_factory=list)  # the other quantizers' entries

    # ---- queries ----------------------------------------------------------------
    def entry(self, layer: str, fmt: QuantFormat | str) -> SensitivityEntry:
        key = (layer, _canonical(fmt))
        try:
            return self.entries[key]
        except KeyError:
            raise KeyError(f"no sensitivity entry for {layer} in {key[1]} (profiled formats: {', '.join(self.formats)})") from None

    def estimated_kl(self, layer: str, fmt: QuantFormat | str) -> float:
        """Measured KL if present, else the calibrated proxy; 0 for 16-bit formats."""
        f = fmt if isinstance(fmt, QuantFormat) else QuantFormat.parse(fmt)
        if f.is_float:
            return 0.0
        e = self.entry(layer, f)
        return e.kl if e.kl is not None else self.proxy_to_kl * e.proxy

    def quantizer_for(self, layer: str, fmt: QuantFormat | str) -> str:
        """The quantizer of least estimated KL for the layer in `fmt` (rtn for 16-bit)."""
        f = fmt if isinstance(fmt, QuantFormat) else QuantFormat.parse(fmt)
        return "rtn" if f.is_float else self.entry(layer, f).quantizer

    def measured_entries(self) -> list[SensitivityEntry]:
        return [e for e in self.entries.values() if e.kl is not None]

    def layer_ranking(self) -> list[tuple[str, float]]:
        """Layers by their worst-case estimated KL over the profiled formats, most sensitive first."""
        worst: dict[str, float] = {}
        for (layer, fmt) in self.entries:
            worst[layer] = max(worst.get(layer, 0.0), self.estimated_kl(layer, fmt))
        return sorted(worst.items(), key=lambda kv: -kv[1])

    # ---- file form ---------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        meta = {k: v for k, v in asdict(self).items() if k not in ("entries", "alternatives")}
        return {
            "autoquant_sensitivity_version": TABLE_VERSION,
            **meta,
            "entries": [asdict(e) for e in self.entries.values()],
            "alternatives": [asdict(e) for e in self.alternatives],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SensitivityTable:
        version = d.get("autoquant_sensitivity_version")
        if version != TABLE_VERSION:
            raise UserError(f"unsupported sensitivity table version {version!r}; this autoquant reads {TABLE_VERSION}")
        d = dict(d)
        d.pop("autoquant_sensitivity_version")
        try:
            entries = {(e["layer"], e["format"]): SensitivityEntry(**e) for e in d.pop("entries")}
            alternatives = [SensitivityEntry(**e) for e in d.pop("alternatives", [])]
            return cls(entries=entries, alternatives=alternatives, **d)
        except (KeyError, TypeError) as e:
            raise UserError(f"malformed sensitivity table: {e}") from None

    def save(self, path: str | os.PathLike) -> Path:
        return write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> SensitivityTable:
        return cls.from_dict(read_json(path, "sensitivity table", " (run `autoquant profile` first)"))


def _canonical(fmt: QuantFormat | str) -> str:
    return str(fmt if isinstance(fmt, QuantFormat) else QuantFormat.parse(fmt))
