"""What a plan costs (memory, latency, bits) and the budgets it is checked against: one place for
the search, `autoquant estimate` and the app.

    memory     `autoquant.memory.estimate_memory` (the serving-memory model of a model shape)
    latency    `autoquant.hardware.plan_latency` (a measured GPU profile, else the roofline estimate)
    bits       `Plan.bits_per_weight`
    quality    the proxy KL while searching; measured quality is `autoquant.quality`'s

`plan_costs` puts the three together as `PlanCosts`; `Budgets` holds the limits and says which a
plan breaks. Budgets are parsed here too: sizes (`24GB`, `24GiB`), latencies (`30ms`), quality
(`kl=0.05`, `ppl=+3%`). Decimal units (kB, MB, GB, TB) are powers of 1000 as on GPU spec sheets; binary ones
(KiB, MiB, GiB, TiB) powers of 1024. A bare number is bytes / seconds.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from autoquant.errors import UserError
from autoquant.hardware import LatencyModel, plan_latency
from autoquant.memory import ModelShape, estimate_memory
from autoquant.plan import Plan

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


# ---- budgets and plan costs -----------------------------------------------------------------------
@dataclass(frozen=True)
class Budgets:
    """Limits a recommended plan must meet. Memory is total serving memory in bytes."""

    memory_bytes: int
    latency_s: float | None = None  # decode seconds per token
    quality: QualityBudget | None = None

    def proxy_kl_limit(self) -> float | None:
        """The quality budget on the KL scale of the proxy.

        A ppl budget is mapped with KL ~= ln(1 + dppl): the expected increase of cross-entropy
        is the KL when the reference model fits the text (first order). Only the search uses
        this; the recommendation is checked against the measured perplexity itself.
        """
        if self.quality is None:
            return None
        if self.quality.metric == "kl":
            return self.quality.limit
        return math.log1p(self.quality.limit)

    def to_dict(self) -> dict:
        return {
            "memory_bytes": self.memory_bytes,
            "latency_s": self.latency_s,
            "quality": None if self.quality is None else str(self.quality),
        }


@dataclass(frozen=True)
class PlanCosts:
    """The objectives of one plan, as the search sees them (quality is the proxy)."""

    proxy_kl: float
    memory_bytes: int
    weight_bytes: int  # linear weights only: what the plan changes
    bits_per_weight: float
    decode_s: float
    prefill_s: float
    latency_estimated: bool

    def violations(self, budgets: Budgets) -> dict[str, float]:
        """Optuna constraint values, <= 0 where a budget is met (MB, ms, nats: similar scales)."""
        out = {"memory_mb": float(self.memory_bytes - budgets.memory_bytes) / 1e6}
        if budgets.latency_s is not None:
            out["decode_ms"] = (self.decode_s - budgets.latency_s) * 1e3
        kl_limit = budgets.proxy_kl_limit()
        if kl_limit is not None:
            out["proxy_kl"] = self.proxy_kl - kl_limit
        return out

    def fits(self, budgets: Budgets) -> bool:
        return all(v <= 0 for v in self.violations(budgets).values())

    def within_memory_and_latency(self, budgets: Budgets) -> bool:
        """The budgets judged on estimates alone (quality is judged on measured values)."""
        return self.memory_bytes <= budgets.memory_bytes and (
            budgets.latency_s is None or self.decode_s <= budgets.latency_s)


def plan_costs(shape: ModelShape, plan: Plan, latency: LatencyModel | None, batch: int = 1, context: int = 4096,
               proxy_kl: float = math.nan) -> PlanCosts:
    """Memory, latency and bits of any plan (NaN latency without a latency model).

    The search scores its own trials with precomputed per-group sums (`SearchProblem.costs`,
    the same numbers); this is for plans outside its space, such as the uniform baselines.
    """
    mem = estimate_memory(shape, plan, batch, context)
    lat = None if latency is None else plan_latency(shape, plan, latency, batch, context)
    return PlanCosts(
        proxy_kl=proxy_kl,
        memory_bytes=mem.total_bytes,
        weight_bytes=mem.linear_bytes,
        bits_per_weight=plan.bits_per_weight(list(shape.layers)),
        decode_s=math.nan if lat is None else lat.decode_s,
        prefill_s=math.nan if lat is None else lat.prefill_s,
        latency_estimated=True if lat is None else lat.estimated,
    )
