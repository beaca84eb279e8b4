"""Finished profiling results on disk, written the moment each one is done.

One append-only JSON-lines file per profile key (model fingerprint, calibration text
fingerprint, calibration tokens and window length, method version), under
`<AUTOQUANT_CACHE>/sensitivity/`. Each line is one result of one (layer, format, quantizer):

    {"kind": "proxy", "layer": ..., "format": ..., "quantizer": "gptq", "output_error": ..., "output_energy": ..., "fisher_error": ...}
    {"kind": "kl", "layer": ..., "format": ..., "quantizer": "rtn", "measure_tokens": 512, "kl": ..., "ppl_change": ..., ...}
    {"kind": "seconds", "quantizer": "gptq", "seconds": 0.21}     worker time of one layer's proxies

(a line without "quantizer" is round-to-nearest's: files written before quantizers existed),

so a crash loses at most the tasks in flight, a repeated profile reads everything back
without starting a worker, and an interrupted one resumes with what is missing. A torn
last line (killed mid-write) is skipped. Measurements are keyed by their token count too:
a run with a different `--measure-tokens` reuses the proxies but measures afresh.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from autoquant import models
from autoquant.jsonfile import append_lines, read_lines
from autoquant.quality import Measurement
from autoquant.sensitivity.proxy import ProxyParts

Triple = tuple[str, str, str]  # (layer name, canonical format string, quantizer)


@dataclass(frozen=True)
class CacheKey:
    model_fingerprint: str
    calib_fingerprint: str
    calib_tokens: int
    seq_len: int
    method_version: str

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:20]


def default_cache_dir() -> Path:
    return models.CACHE_DIR / "sensitivity"


class ProfileCache:
    """Reads a key's finished results once, then appends new ones line by line."""

    def __init__(self, key: CacheKey, root: str | os.PathLike | None = None):
        self.key = key
        self.path = Path(root if root is not None else default_cache_dir()) / f"{key.model_fingerprint}-{key.digest}.jsonl"
        self._proxies: dict[Triple, ProxyParts] = {}
        self._kl: dict[tuple[int, str, str, str], Measurement] = {}
        self._seconds: dict[str, float] = {}  # quantizer -> worker seconds its proxies took, summed
        self._torn = False  # the file ends mid-line: the next append starts a new one
        self._read()

    def _read(self) -> None:
        self._torn = read_lines(self.path, self._parse,
                                "a run killed mid-write or a full disk; their results are recomputed")

    def _parse(self, rec: dict) -> None:
        kind = rec["kind"]
        if kind == "proxy":
            self._proxies[_triple(rec)] = ProxyParts(rec["output_error"], rec["output_energy"], rec["fisher_error"])
        elif kind == "kl":
            self._kl[(rec["measure_tokens"], *_triple(rec))] = Measurement.from_dict(rec)
        elif kind == "seconds":
            self._seconds[rec["quantizer"]] = self._seconds.get(rec["quantizer"], 0.0) + rec["seconds"]

    def _append(self, records: list[dict]) -> None:
        lines = []
        if not self.path.exists():
            lines.append(json.dumps({"kind": "key", **asdict(self.key)}))
        lines.extend(json.dumps(r) for r in records)
        torn, self._torn = self._torn, True  # until the write is known whole: a failed one may tear a line
        append_lines(self.path, lines, new_line_first=torn)
        self._torn = False

    # ---- proxies ---------------------------------------------------------------
    def proxies(self) -> dict[Triple, ProxyParts]:
        return dict(self._proxies)

    def proxy_seconds(self) -> dict[str, float]:
        """Worker seconds the cached proxies took, per quantizer (what each quantizer costs)."""
        return dict(self._seconds)

    def add_proxies(self, layer: str, parts: dict[tuple[str, str], ProxyParts], seconds: dict[str, float]) -> None:
        self._append([{"kind": "proxy", "layer": layer, "format": f, "quantizer": q, **asdict(p)}
                      for (f, q), p in parts.items()]
                     + [{"kind": "seconds", "quantizer": q, "seconds": round(t, 4)} for q, t in seconds.items()])
        for (f, q), p in parts.items():
            self._proxies[(layer, f, q)] = p
        for q, t in seconds.items():
            self._seconds[q] = self._seconds.get(q, 0.0) + t

    # ---- measurements ------------------------------------------------------------
    def measurements(self, measure_tokens: int) -> dict[Triple, Measurement]:
        return {(l, f, q): m for (t, l, f, q), m in self._kl.items() if t == measure_tokens}

    def add_measurement(self, triple: Triple, measure_tokens: int, m: Measurement) -> None:
        layer, fmt, quantizer = triple
        self._append([{"kind": "kl", "layer": layer, "format": fmt, "quantizer": quantizer,
                       "measure_tokens": measure_tokens, **asdict(m)}])
        self._kl[(measure_tokens, *triple)] = m


def _triple(rec: dict) -> Triple:
    return rec["layer"], rec["format"], rec.get("quantizer", "rtn")
