"""The search problem: tie groups, their choices, and what a plan costs.

A plan is one format per tie group (q/k/v of a block move together, see `SearchSpace`). Each
layer's quantizer follows from its format: the one of least estimated KL that the space allows
and the profile measured (`SensitivityTable.best_quantizer`): quantizers cost no bytes and no
time, so they are no search dimension of their own.
Three objectives, all minimised:

    quality loss   sum over layers of the sensitivity table's estimated KL (the additive,
                   first-order proxy; the front's plans are then measured for real)
    memory         total serving bytes from `autoquant.memory.estimate_memory`
    latency        decode seconds per step from `autoquant.hardware.plan_latency` (prefill too)

Per-group KL, bytes and layer seconds are precomputed once, so scoring a trial is a few
additions plus one memory estimate; the DP (`dp.py`) reads the same per-group arrays. The
latency of a plan is the sum of its layers' times plus a plan-independent rest (attention,
norms): the per-layer times are taken from `plan_latency` itself, so the sum is exact.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from autoquant.costs import PlanCosts
from autoquant.data import TextRef
from autoquant.formats import QuantFormat
from autoquant.hardware import LatencyModel, PlanLatency, plan_latency
from autoquant.layers import LinearLayer
from autoquant.memory import ModelShape, estimate_memory, layer_weight_bytes
from autoquant.plan import Plan
from autoquant.space import SearchSpace


class KLTable(Protocol):
    """What the search reads of a `SensitivityTable`."""

    def best_quantizer(self, layer: str, fmt: QuantFormat | str, allowed: Sequence[str]) -> tuple[str, float]: ...


@dataclass(frozen=True)
class TieGroup:
    """Layers that take one format together, the formats they may take and what each costs."""

    label: str  # Optuna parameter name, e.g. model.layers.0.self_attn.q_proj|k_proj|v_proj
    layers: tuple[str, ...]
    choices: tuple[QuantFormat, ...]
    kl: tuple[float, ...]  # per choice: summed estimated KL of the members
    weight_bytes: tuple[int, ...]  # per choice: summed bytes the members add (`layer_weight_bytes`)
    decode_s: tuple[float, ...] = ()  # per choice: summed layer seconds of one decode step
    prefill_s: tuple[float, ...] = ()  # per choice: summed layer seconds of the prefill
    measured: tuple[bool, ...] = ()  # per choice: every member's time was measured
    quantizers: tuple[tuple[str, ...], ...] = ()  # per choice: each member's quantizer (rtn, gptq, awq)

    @property
    def searched(self) -> bool:
        return len(self.choices) > 1


def group_label(names: Sequence[str]) -> str:
    """`a.b.q_proj|k_proj|v_proj`: the common parent once, then the leaves."""
    if len(names) == 1:
        return names[0]
    parents = {n.rpartition(".")[0] for n in names}
    if len(parents) == 1:
        parent = parents.pop()
        return parent + "." + "|".join(n.rpartition(".")[2] for n in names)
    return "|".join(names)


@dataclass(frozen=True)
class _Rest:
    """The plan-independent part of the latency, and whether it was measured."""

    decode_s: float
    prefill_s: float
    measured: bool


def _layer_latencies(
    shape: ModelShape, formats: list[QuantFormat], model: LatencyModel, batch: int, context: int
) -> tuple[dict[tuple[str, QuantFormat], tuple[float, float, bool]], _Rest]:
    """(layer, format) -> (decode s, prefill s, measured), from one uniform `plan_latency` per format."""
    out: dict[tuple[str, QuantFormat], tuple[float, float, bool]] = {}
    rest = None
    for fmt in formats:
        lat = plan_latency(shape, Plan({l.name: fmt for l in shape.layers}), model, batch, context)
        for row in lat.layers:
            out[(row.name, fmt)] = (row.decode_s, row.prefill_s, row.measured)
        rest = _Rest(lat.rest_decode_s, lat.rest_prefill_s, model.measured and model.rest.measured)
    assert rest is not None
    return out, rest


@dataclass
class SearchProblem:
    """Everything needed to turn a choice per tie group into a plan and its costs."""

    shape: ModelShape
    space: SearchSpace
    groups: list[TieGroup]
    latency: LatencyModel | None
    batch: int = 1
    context: int = 4096
    model_name: str = ""
    rest: _Rest | None = None
    calibration: TextRef | None = None  # what gptq/awq layers are calibrated on (recorded in plans)

    @classmethod
    def build(
        cls,
        shape: ModelShape,
        space: SearchSpace,
        table: KLTable,
        latency: LatencyModel | None,
        *,
        batch: int = 1,
        context: int = 4096,
        model_name: str = "",
        calibration: TextRef | None = None,
    ) -> SearchProblem:
        by_name = {l.name: l for l in shape.layers}
        times, rest = ({}, None)
        if latency is not None:
            times, rest = _layer_latencies(shape, space.all_formats(), latency, batch, context)
        groups = []
        for names in space.tie_groups(list(shape.layers)):
            members = [by_name[n] for n in names]
            choices = tuple(space.formats_for(members[0]))
            best = [[table.best_quantizer(m.name, f, space.quantizers_for(m, f)) for m in members] for f in choices]
            kl = tuple(float(sum(k for _, k in per)) for per in best)
            quantizers = tuple(tuple(q for q, _ in per) for per in best)
            nbytes = tuple(sum(layer_weight_bytes(shape, m, f) for m in members) for f in choices)
            dec = pre = meas = ()
            if latency is not None:
                dec = tuple(sum(times[(n, f)][0] for n in names) for f in choices)
                pre = tuple(sum(times[(n, f)][1] for n in names) for f in choices)
                meas = tuple(all(times[(n, f)][2] for n in names) for f in choices)
            groups.append(TieGroup(group_label(names), tuple(names), choices, kl, nbytes, dec, pre, meas, quantizers))
        return cls(shape, space, groups, latency, batch, context, model_name, rest, calibration)

    @property
    def layers(self) -> list[LinearLayer]:
        return list(self.shape.layers)

    @property
    def searched_groups(self) -> list[TieGroup]:
        return [g for g in self.groups if g.searched]

    # ---- choices <-> plans ------------------------------------------------------
    def plan(self, choice: Sequence[int]) -> Plan:
        """The plan choosing `choice[i]` (an index into choices) for group i."""
        formats: dict[str, QuantFormat] = {}
        quantizers: dict[str, str] = {}
        for g, c in zip(self.groups, choice, strict=True):
            for i, name in enumerate(g.layers):
                formats[name] = g.choices[c]
                if g.quantizers and g.quantizers[c][i] != "rtn":
                    quantizers[name] = g.quantizers[c][i]
        # Keep the model's module order, as every other plan does.
        return Plan({l.name: formats[l.name] for l in self.shape.layers}, self.model_name, quantizers=quantizers,
                    calibration=self.calibration if quantizers else None)

    def choice_of(self, plan: Plan) -> list[int]:
        """The inverse of `plan`; ValueError when the plan is outside the space."""
        out = []
        for g in self.groups:
            fmt = plan.format_of(g.layers[0])
            if fmt not in g.choices or any(plan.format_of(n) != fmt for n in g.layers):
                raise ValueError(f"plan gives {g.label} a format outside the space or splits its tie group")
            out.append(g.choices.index(fmt))
        return out

    def params_of(self, choice: Sequence[int]) -> dict[str, str]:
        """Optuna parameters: one categorical per searched group, the format string as value."""
        return {g.label: str(g.choices[c]) for g, c in zip(self.groups, choice) if g.searched}

    def choice_from_params(self, params: dict[str, str]) -> list[int]:
        """KeyError/ValueError when the params do not belong to this problem."""
        out = []
        for g in self.groups:
            if not g.searched:
                out.append(0)
                continue
            out.append(g.choices.index(QuantFormat.parse(params[g.label])))
        return out

    def uniform_choice(self, fmt: QuantFormat) -> list[int] | None:
        """Every group at `fmt` where allowed, else its nearest choice in bits; None if no group allows it."""
        if not any(fmt in g.choices for g in self.groups if g.searched):
            return None
        out = []
        for g in self.groups:
            if fmt in g.choices:
                out.append(g.choices.index(fmt))
            else:
                out.append(min(range(len(g.choices)), key=lambda i: (abs(g.choices[i].bits - fmt.bits), -g.choices[i].bits)))
        return out

    # ---- costs ------------------------------------------------------------------
    def proxy_kl(self, choice: Sequence[int]) -> float:
        return float(sum(g.kl[c] for g, c in zip(self.groups, choice)))

    def weight_bytes(self, choice: Sequence[int]) -> int:
        return int(sum(g.weight_bytes[c] for g, c in zip(self.groups, choice)))

    def latency_of(self, choice: Sequence[int]) -> tuple[float, float, bool]:
        """(decode s, prefill s, estimated): the layer sums plus the rest; NaN without a model."""
        if self.rest is None:
            return math.nan, math.nan, True
        pairs = list(zip(self.groups, choice))
        decode = self.rest.decode_s + sum(g.decode_s[c] for g, c in pairs)
        prefill = self.rest.prefill_s + sum(g.prefill_s[c] for g, c in pairs)
        measured = self.rest.measured and all(g.measured[c] for g, c in pairs)
        return decode, prefill, not measured

    def plan_latency(self, choice: Sequence[int]) -> PlanLatency | None:
        """The full breakdown from the hardware module, for reports (the search uses `latency_of`)."""
        if self.latency is None:
            return None
        return plan_latency(self.shape, self.plan(choice), self.latency, self.batch, self.context)

    def costs(self, choice: Sequence[int]) -> PlanCosts:
        plan = self.plan(choice)
        mem = estimate_memory(self.shape, plan, self.batch, self.context)
        decode, prefill, estimated = self.latency_of(choice)
        return PlanCosts(
            proxy_kl=self.proxy_kl(choice),
            memory_bytes=mem.total_bytes,
            weight_bytes=mem.linear_bytes,
            bits_per_weight=plan.bits_per_weight(self.layers),
            decode_s=decode,
            prefill_s=prefill,
            latency_estimated=estimated,
        )

    def smallest_choice(self) -> list[int]:
        """Every group at its fewest bytes: the least memory any plan of the space reaches."""
        return [min(range(len(g.choices)), key=lambda i: (g.weight_bytes[i], g.kl[i])) for g in self.groups]

    def best_quality_choice(self) -> list[int]:
        return [min(range(len(g.choices)), key=lambda i: (g.kl[i], g.weight_bytes[i])) for g in self.groups]

    def fastest_choice(self) -> list[int]:
        """Every group at its fastest decode format: the least latency any plan of the space reaches."""
        if self.rest is None:
            return self.smallest_choice()
        return [min(range(len(g.choices)), key=lambda i: (g.decode_s[i], g.weight_bytes[i])) for g in self.groups]
