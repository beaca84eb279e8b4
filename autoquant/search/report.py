"""What a search shows and writes: the front table, JSON, the plot, the plan file.

    runs/<model>/<study>/
        study.db     the Optuna study (SQLite default; elsewhere with --storage)
        front.json   the whole result, machine-readable (the same document as --json)
        plan.json    the recommended plan (autoquant.plan format, search metadata included)
        front.png    memory vs quality: the proxy front, the measured plans, baselines, recommended

Quality in the table is measured (perplexity and KL on the evaluation text); the proxy KL
the search optimised is shown beside it. Memory always comes from the memory model
(estimated); latency is labelled estimated unless every number came from a measured profile.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from autoquant.costs import format_bytes, format_seconds
from autoquant.formats import QuantFormat
from autoquant.jsonfile import write_atomic, write_json
from autoquant.search.front import FrontPlan
from autoquant.runfiles import (BudgetsDoc, FrontDocument, LayerShape, MeasuredQuality, PlanPoint, StudyDoc,
                                write_front)
from autoquant.search.result import SearchResult


def _num(x: float | None) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else x


# ---- front.json, through its schema (autoquant.runfiles) --------------------------------------------
def _quality(m: dict[str, Any] | None) -> MeasuredQuality | None:
    return None if m is None else MeasuredQuality(**{k: m[k] for k in MeasuredQuality.__dataclass_fields__ if k in m})


def plan_point(p: FrontPlan, result: SearchResult, with_layers: bool = False) -> PlanPoint:
    c = p.costs
    return PlanPoint(
        label=p.label or f"trial {p.trial}", trial=p.trial, memory_bytes=c.memory_bytes, linear_bytes=c.weight_bytes,
        bits_per_weight=round(c.bits_per_weight, 4), decode_s=_num(c.decode_s), prefill_s=_num(c.prefill_s),
        latency_estimated=c.latency_estimated, proxy_kl=_num(c.proxy_kl), measured=_quality(p.measured),
        summary=p.plan.summary(), recommended=p is result.recommended,
        layers={name: str(f) for name, f in p.plan.formats.items()} if with_layers else None,
        quantizers=dict(p.plan.quantizers) if with_layers else None,
    )


def front_document(result: SearchResult) -> FrontDocument:
    req = result.request
    return FrontDocument(
        model=result.model, model_spec=req.model, space=result.space.name, engine=req.engine, hardware=result.hardware,
        latency_estimated=result.latency_estimated, memory_estimated=True, batch=req.batch, context=req.context,
        budgets=BudgetsDoc(**req.budgets.to_dict()),
        study=StudyDoc(name=result.study, storage=result.storage, trials=result.trials_total,
                       added=result.trials_added, seeded=result.seeded, sampler=req.sampler),
        proxy_front_size=result.proxy_front_size, proxy_hypervolume_ratio=round(result.proxy_hv_ratio, 5),
        reference=_quality(result.reference.to_dict()),
        baselines=[plan_point(b, result) for b in result.front.baselines],
        front=[plan_point(p, result, with_layers=p.measured is not None) for p in result.front.plans],
        recommended=None if result.recommended is None else plan_point(result.recommended, result, True),
        layers=[LayerShape(l.name, l.out_features, l.in_features, l.role, l.block, l.tied) for l in result.problem.layers],
        notes=result.table_notes + result.notes,
        calibration=result.problem.calibration,
        timings_s={k: round(v, 2) for k, v in result.timings.items()},
        files=result.files,
    )


def to_json(result: SearchResult) -> dict[str, Any]:
    return front_document(result).to_dict()


def search_notes(result: SearchResult) -> list[str]:
    """What a reader of the result should know: free fp16, a Q4_1 echo, estimated latency, a tied lm_head."""
    problem, budgets = result.problem, result.request.budgets
    notes = []
    rec = result.recommended
    if rec is not None and all(f.is_float for f in rec.plan.formats.values()):
        notes.append(
            f"fp16 fits in {format_bytes(budgets.memory_bytes)}: quantization is not needed for this budget; "
            "the front shows what smaller budgets would cost"
        )
    g32 = QuantFormat.parse("int4-g32-asym")
    if rec is not None and g32 in rec.plan.formats.values() and any("Q4_1" in n for n in result.table_notes):
        notes.append(
            "the recommended plan uses int4-g32-asym, which reproduces this checkpoint's Q4_1 storage almost "
            "exactly: its measured quality overstates what int4-g32-asym gives a model trained in 16 bits"
        )
    if result.latency_estimated:
        notes.append(f"latency is estimated ({result.hardware}), not measured on this machine")
    head = next((l for l in problem.layers if l.tied and l.role == "lm_head"), None)
    if head is not None and any(f.is_gguf for f in problem.space.formats_for(head)):
        notes.append(
            "the tied lm_head is the GGUF file's token_embd: a block format on it quantizes the embedding "
            "lookup too (one tensor, no copy), and its bytes replace the f16 embedding's"
        )
    elif head is not None:
        notes.append(
            "bits/weight counts the tied lm_head at 16 bits: it shares the embedding's storage, so memory "
            "does not grow with it; uniform baselines quantize (and so untie) it, adding a copy"
        )
    return notes


# ---- the table -----------------------------------------------------------------------------------
def _quality_cells(p: FrontPlan, ref_ppl: float) -> tuple[str, str, str]:
    if p.measured is None:
        return "-", "-", "-"
    m = p.measured
    return f"{m['perplexity']:.2f}", f"{m['ppl_change'] * 100:+.1f}%", f"{m['kl']:.4f}"


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n < 1e9 else format_bytes(n)


def front_table(result: SearchResult) -> Table:
    req = result.request
    lat = "estimated" if result.latency_estimated else "measured"
    title = (
        f"{result.model} for {req.engine}, batch {req.batch}, context {req.context}. "
        f"{sum(p.measured is not None for p in result.front.plans)} of the {len(result.front.plans)} front plans "
        f"within budget (#trial), uniform baselines below. Memory: estimated (memory model); latency: {lat} "
        f"({result.hardware}); ppl, KL: measured on {result.reference.tokens} tokens of {result.reference.text}."
    )
    # Compact enough for an 80-column terminal; the formats of each plan are in front.json.
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, padding=0, pad_edge=False, show_edge=False)
    for col in ("plan", "memory", "bits/w", "decode", "prefill", "ppl", "Δppl", "KL", "proxy KL"):
        table.add_column(col, justify="left" if col == "plan" else "right", no_wrap=True)
    ref = result.reference.perplexity

    def add(p: FrontPlan, name: str, style: str = "") -> None:
        ppl, dppl, kl = _quality_cells(p, ref)
        c = p.costs
        table.add_row(
            name, _mb(c.memory_bytes), f"{c.bits_per_weight:.1f}",
            "-" if math.isnan(c.decode_s) else format_seconds(c.decode_s),
            "-" if math.isnan(c.prefill_s) else format_seconds(c.prefill_s),
            ppl, dppl, kl, "-" if math.isnan(c.proxy_kl) else f"{c.proxy_kl:.4f}", style=style,
        )

    for p in result.front.plans:
        if p.measured is None:
            continue
        star = p is result.recommended
        add(p, ("★ " if star else "  ") + f"#{p.trial}" + _calibrated(p.plan), "bold green" if star else "")
    table.add_section()
    for b in result.front.baselines:
        add(b, "  " + b.label.removeprefix("uniform "), "dim")
    return table


def _calibrated(plan) -> str:
    """` (gptq)` for a plan with gptq layers: it is quantized on calibration text, not alone."""
    used = sorted(set(plan.calibrated_layers.values()))
    return f" ({'/'.join(used)})" if used else ""


def print_report(result: SearchResult, console: Console) -> None:
    """Human output on `console` (stdout): the table, the recommendation, notes, files."""
    console.print(front_table(result))
    r = result
    console.print(
        f"study {r.study}: {r.trials_total} trials ({r.trials_added} added now, {r.seeded} seeded), "
        f"{r.request.sampler}; within the memory budget the trials reach {r.proxy_hv_ratio * 100:.1f}% of the "
        f"hypervolume of the exact proxy front (DP, {r.proxy_front_size} plans in all). Reference (unquantized) ppl "
        f"{r.reference.perplexity:.2f} on {r.reference.tokens} tokens of {r.reference.text}."
    )
    rec = result.recommended
    budgets = result.request.budgets
    within = [f"memory {format_bytes(budgets.memory_bytes)}"]
    if budgets.latency_s is not None:
        within.append(f"decode latency {format_seconds(budgets.latency_s)}")
    if budgets.quality is not None:
        within.append(f"quality {budgets.quality}")
    if rec is not None:
        m = rec.measured
        console.print(
            f"[bold]recommended:[/bold] #{rec.trial} ({rec.plan.summary()}): {format_bytes(rec.costs.memory_bytes)}, "
            f"{rec.costs.bits_per_weight:.2f} bits/weight, ppl {m['perplexity']:.2f} ({m['ppl_change'] * 100:+.2f}%), "
            f"KL {m['kl']:.4f}: the best measured quality within {', '.join(within)}"
        )
    for note in result.table_notes + result.notes:
        console.print(f"[dim]note: {note}[/dim]")
    for what, path in result.files.items():
        console.print(f"[dim]{what}: {path}[/dim]")


# ---- files -------------------------------------------------------------------------------------------
def write_run(result: SearchResult) -> dict[str, str]:
    """front.json, plan.json (when there is a recommendation) and front.png; returns their paths."""
    run_dir = result.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    files = {"front_json": str(run_dir / "front.json"), "plot": str(run_dir / "front.png")}
    if result.recommended is not None:
        files["plan"] = str(result.recommended.plan.save(run_dir / "plan.json"))
    if result.storage.startswith("sqlite:///"):
        files["study"] = result.storage.removeprefix("sqlite:///")
    result.files = files
    plot_front(result, Path(files["plot"]))
    write_front(files["front_json"], front_document(result))
    return files


def plot_front(result: SearchResult, path: Path) -> None:
    """Two panels: the proxy front the search found (left), the measured quality (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.8))
    budget_mb = result.request.budgets.memory_bytes / 1e6
    plans = result.front.plans
    mem = [p.costs.memory_bytes / 1e6 for p in plans]
    ax1.plot(mem, [p.costs.proxy_kl for p in plans], "o-", ms=3, lw=1, color="tab:blue", label="front (proxy)")
    meas = [p for p in plans if p.measured is not None]
    ax1.plot([p.costs.memory_bytes / 1e6 for p in meas], [p.costs.proxy_kl for p in meas], "o", mfc="none",
             ms=8, color="tab:orange", label="measured")
    ax1.set_yscale("symlog", linthresh=1e-4)  # the front spans 0 (fp16) to ~1 nat: show both ends
    ax1.set_xlabel("serving memory (MB, estimated)")
    ax1.set_ylabel("proxy KL, nats (sum of per-layer estimates)")
    ax1.set_title("search front (proxy)")

    ax2.plot([p.costs.memory_bytes / 1e6 for p in meas], [p.measured["perplexity"] for p in meas], "o-",
             color="tab:orange", label="front plans (measured)")
    markers = {"uniform fp16": "s", "uniform int8-pc-sym": "D", "uniform int4-g128-asym": "^"}
    for b in result.front.baselines:
        ax2.plot(b.costs.memory_bytes / 1e6, b.measured["perplexity"], markers.get(b.label, "x"), ms=8,
                 color="gray", label=b.label)
    rec = result.recommended
    if rec is not None:
        for ax, y in ((ax1, rec.costs.proxy_kl), (ax2, rec.measured["perplexity"])):
            ax.plot(rec.costs.memory_bytes / 1e6, y, "*", ms=16, color="tab:green", label="recommended", zorder=5)
    ax2.set_xlabel("serving memory (MB, estimated)")
    ax2.set_ylabel(f"perplexity ({result.reference.tokens} tokens, {result.reference.text})")
    ax2.set_title("measured quality")
    for ax in (ax1, ax2):
        lo, hi = ax.get_xlim()
        if lo <= budget_mb <= hi * 1.02:
            ax.axvline(budget_mb, color="red", ls="--", lw=1, label="memory budget")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"{result.model} — {result.space.name} space, study {result.study}", fontsize=10)
    fig.tight_layout()
    try:
        write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=110))
    finally:
        plt.close(fig)
