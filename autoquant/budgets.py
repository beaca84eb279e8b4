"""Parsing of budgets: sizes (`24GB`, `24GiB`), latencies (`30ms`), quality (`kl=0.05`, `ppl=+3%`).

Decimal units (kB, MB, GB, TB) are powers of 1000 as on GPU spec sheets; binary ones
(KiB, MiB, GiB, TiB) powers of 1024. A bare number is bytes / seconds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from autoquant.errors import UserError

_SIZE_UNITS = {
    "": 1, "b": 1,
    "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
    "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12,
}
_TIME_UNITS = {"": 1.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
_NUMBER = r"(\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_SIZE = re.compile(rf"^\s*({_NUMBER})\s*([a-zA-Z]*)\s*$")
_TIME = re.compile(rf"^\s*({_NUMBER})\s*([a-zA-Zµ]*)\s*$")
_QUALITY = re.compile(rf"^\s*(kl|ppl)\s*=\s*(\+)?\s*({_NUMBER})\s*(%)?\s*$", re.IGNORECASE)


def parse_size(text: str, what: str = "budget") -> int:
    """'24GB' -> 24_000_000_000 bytes; UserError naming the accepted units otherwise."""
    m = _SIZE.match(text)
    unit = m.group(3).lower() if m else None
    if not m or unit not in _SIZE_UNITS:
        raise UserError(
            f"invalid {what} {text!r}: expected a size such as 24GB, 24GiB, 24000MB or 0.5TB "
            "(units B, kB, MB, GB, TB, KiB, MiB, GiB, TiB)"
        )
    value = float(m.group(1)) * _SIZE_UNITS[unit]
    if value <= 0:
        raise UserError(f"invalid {what} {text!r}: must be a positive size such as 24GB")
    return int(round(value))


def parse_latency(text: str, what: str = "latency budget") -> float:
    """'30ms' -> 0.030 seconds."""
    m = _TIME.match(text)
    unit = m.group(3).lower() if m else None
    if not m or unit not in _TIME_UNITS:
        raise UserError(f"invalid {what} {text!r}: expected a time such as 30ms, 0.5s or 800us")
    value = float(m.group(1)) * _TIME_UNITS[unit]
    if value <= 0:
        raise UserError(f"invalid {what} {text!r}: must be positive")
    return value


@dataclass(frozen=True)
class QualityBudget:
    """The most quality a plan may lose against fp16.

    metric "kl": mean KL divergence (nats/token) of the next-token distribution.
    metric "ppl": relative perplexity increase (0.03 for +3%).
    """

    metric: str
    limit: float

    def __str__(self) -> str:
        return f"kl={self.limit:g}" if self.metric == "kl" else f"ppl=+{self.limit * 100:g}%"


def parse_quality(text: str) -> QualityBudget:
    m = _QUALITY.match(text)
    if not m:
        raise UserError(f"invalid quality budget {text!r}: expected kl=0.05 or ppl=+3%")
    metric, value, percent = m.group(1).lower(), float(m.group(3)), m.group(5)
    if metric == "kl":
        if percent:
            raise UserError(f"invalid quality budget {text!r}: kl takes a number (nats), not a percentage")
        return QualityBudget("kl", value)
    if not percent:
        raise UserError(f"invalid quality budget {text!r}: ppl takes a percentage, e.g. ppl=+3%")
    return QualityBudget("ppl", value / 100.0)


def format_bytes(n: float) -> str:
    """Human form in decimal units, matching how budgets are usually written (GB)."""
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.2f} {unit}"
    return f"{int(n)} B"


def format_seconds(s: float) -> str:
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.2f} ms"
    return f"{s * 1e6:.1f} us"
