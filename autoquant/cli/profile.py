"""`autoquant profile`: per-layer, per-format sensitivity on Ray; `autoquant profile show`.

    autoquant profile [--model M] [--space S] [--calib FILE] ...   run (cached, resumable), save, summarise
    autoquant profile show [PATH] [--model M] [--top N]             print a saved table

The table goes to runs/<model>/sensitivity.json with a heatmap beside it (sensitivity.png).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from autoquant.cli._common import JsonOpt, ModelOpt, QuantizersOpt, console, err_console, split_names
from autoquant.errors import UserError

profile_app = typer.Typer(
    help="Measure how much each layer's quality suffers in each format (Ray, cached, resumable).",
    no_args_is_help=False,
    invoke_without_command=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(profile_app, name="profile")


def _run_dir(model: str | None, out: str | None) -> Path:
    if out:
        return Path(out)
    from autoquant.models import resolve_model
    from autoquant.runs import model_run_dir  # one naming of run directories for all commands

    return model_run_dir(resolve_model(model))


@profile_app.callback()
def profile(
    ctx: typer.Context,
    model: ModelOpt = None,
    space: Annotated[Optional[str], typer.Option("--space", "-s", help="Search space YAML, or a bundled name (default, aggressive).")] = None,
    calib: Annotated[Optional[str], typer.Option("--calib", help="Calibration text file. Default: wikitext-2 validation (embedded).")] = None,
    calib_tokens: Annotated[Optional[int], typer.Option("--calib-tokens", help="Calibration tokens for the statistics pass (proxy). Default: 1024, or 8192 when the space has gptq/awq (what whole-model calibration uses).")] = None,
    quantizers: QuantizersOpt = None,
    measure: Annotated[str, typer.Option("--measure", help="Which entries get a measured KL: auto (all on GPU, sample on CPU), all, sample, none.")] = "auto",
    measure_tokens: Annotated[int, typer.Option("--measure-tokens", help="Calibration tokens per measured KL (a prefix of the calibration windows).")] = 512,
    sample: Annotated[int, typer.Option("--sample", help="Entries measured with --measure sample (stratified over proxy, role, format, quantizer).")] = 32,
    proxy: Annotated[str, typer.Option("--proxy", help="Proxy normalisation: fisher (Fisher-weighted output error, ~KL), relative, output.")] = "fisher",
    workers: Annotated[Optional[int], typer.Option("--workers", "-w", help="Ray workers (each loads the model once). Default: one per GPU, else one per 4 cores.")] = None,
    address: Annotated[Optional[str], typer.Option("--address", help="Ray cluster to join (else RAY_ADDRESS, else a local instance).")] = None,
    out: Annotated[Optional[str], typer.Option("--out", "-o", help="Run directory for sensitivity.json/.png. Default: runs/<model>/.")] = None,
    top: Annotated[int, typer.Option("--top", help="Layers listed at each end of the summary.")] = 8,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="No progress bars.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Profile every quantizable layer x every format x every quantizer of the search space: a proxy
    error for all, the measured KL of the full model (only that layer quantized) for all or a sample.

    Results are cached as they finish: re-running is instant, an interrupted run resumes.
    """
    if ctx.invoked_subcommand is not None:
        return
    if address:  # before torch is imported and the model loaded: a wrong address fails in seconds
        from autoquant.ray_address import check_address

        check_address(address)
    from autoquant.data import calibration_text
    from autoquant.models import resolve_model
    from autoquant.sensitivity import profile_sensitivity
    from autoquant.sensitivity.output import save_profile
    from autoquant.space import load_space, restrict_quantizers

    source = resolve_model(model)
    the_space = restrict_quantizers(load_space(space), split_names(quantizers))
    text = calibration_text(calib)
    run_dir = _run_dir(model, out)
    try:
        table = profile_sensitivity(
            source, the_space, text, calib_tokens=calib_tokens, measure=measure, measure_tokens=measure_tokens,
            sample_size=sample, workers=workers, address=address, progress=not no_progress, normalisation=proxy,
        )
    except UserError as e:  # the library names its parameters; two differ from their flags
        raise e.with_flags({"normalisation": "--proxy", "sample_size": "--sample"}) from None
    files = save_profile(table, run_dir)
    if as_json:
        console.print_json(json.dumps(_summary_dict(table, top) | {"table": str(files.table), "heatmap": str(files.heatmap)}))
        return
    _print_summary(table, top)
    err_console.print(f"saved {files.table} and {files.heatmap}")


@profile_app.command("show")
def show(
    path: Annotated[Optional[str], typer.Argument(help="sensitivity.json or its run directory. Default: runs/<model>/.")] = None,
    model: ModelOpt = None,
    top: Annotated[int, typer.Option("--top", help="Layers listed at each end.")] = 10,
    as_json: JsonOpt = False,
) -> None:
    """Print a saved profile: the most and least sensitive layers, and how far the proxy is trusted."""
    from autoquant.sensitivity import SensitivityTable
    from autoquant.sensitivity.output import TABLE_FILE

    if top < 1:
        raise UserError(f"--top must be at least 1 (got {top})")
    p = Path(path) if path else _run_dir(model, None)
    if p.is_dir():
        p = p / TABLE_FILE
    table = SensitivityTable.load(p)
    if as_json:
        console.print_json(json.dumps(_summary_dict(table, top)))
        return
    _print_summary(table, top)


# ---- rendering ------------------------------------------------------------------------------
def _rho(x: float | None) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def _summary_dict(table, top: int) -> dict:
    ranking = table.layer_ranking()
    mine = lambda name: [e for e in table.entries.values() if e.layer == name]  # noqa: E731
    row = lambda name, worst: {  # noqa: E731
        "layer": name, "role": table.roles.get(name, ""), "worst_estimated_kl": worst,
        "estimated_kl": {e.variant: table.estimated_kl(*e.key) for e in mine(name)},
        "measured_kl": {e.variant: e.kl for e in mine(name) if e.measured},
    }
    return {
        "model": table.model, "model_fingerprint": table.model_fingerprint, "method_version": table.method_version,
        "normalisation": table.normalisation, "proxy_to_kl": table.proxy_to_kl, "calibrated": table.calibrated,
        "proxy_to_kl_by_quantizer": table.proxy_to_kl_by_quantizer,
        "spearman": table.spearman, "spearman_by_format": table.spearman_by_format,
        "measured_pairs": len(table.measured_entries()), "pairs": len(table.entries),
        "quantizers": table.quantizers, "quantizer_seconds": table.quantizer_seconds,
        "calib": table.calib_name, "calib_tokens": table.calib_tokens, "measure_tokens": table.measure_tokens,
        "timings": table.timings, "executor": table.executor, "notes": table.notes,
        "most_sensitive": [row(n, w) for n, w in ranking[:top]],
        "least_sensitive": [row(n, w) for n, w in ranking[::-1][:top]],
    }


def _short(name: str) -> str:
    """`model.layers.3.mlp.down_proj` -> `layers.3.mlp.down_proj`: the prefix every layer shares."""
    return name.split(".", 1)[1] if name.startswith("model.") else name


def _layer_table(table, title: str, rows: list[tuple[str, float]]) -> Table:
    """A column per format; with several quantizers a cell gives rtn's KL, then the best other
    quantizer's (`1.2e-03 gptq`), so the table stays as wide as the formats."""
    t = Table(title=title, title_justify="left")
    t.add_column("layer", overflow="fold")
    for f in table.formats:
        t.add_column(f.replace("-", "-\n", 1), justify="right", no_wrap=True)  # int4-/g128-asym: narrow
    t.add_column("Δppl", justify="right", no_wrap=True)
    others = [q for q in table.quantizers if q != "rtn"]
    for name, _ in rows:
        cells, ppl = [], []
        for f in table.formats:
            lines = []
            for q in ["rtn", *others]:
                e = table.entries.get((name, f, q))
                if e is None:
                    continue
                if e.measured and e.ppl_change is not None:
                    ppl.append(e.ppl_change)
                if q == "rtn":
                    lines.append(_kl(table, e))
            best = min((table.entries[(name, f, q)] for q in others if (name, f, q) in table.entries),
                       key=lambda e: table.estimated_kl(*e.key), default=None)
            if best is not None:
                lines.append(f"{_kl(table, best)} {best.quantizer}")
            cells.append("\n".join(lines) or "-")
        # the largest measured perplexity change of this layer (its most aggressive measured format)
        t.add_row(_short(name), *cells, f"{max(ppl, key=abs):+.2%}" if ppl else "")
    return t


def _kl(table, e) -> str:
    return f"{table.estimated_kl(*e.key):.1e}" + ("*" if e.measured else "")


def _print_summary(table, top: int) -> None:
    measured = table.measured_entries()
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    head.add_row("model", f"{table.model} ({table.model_fingerprint})")
    head.add_row("calibration", f"{table.calib_name}: {table.calib_tokens} tokens (proxy), {table.measure_tokens} per measured KL")
    head.add_row("entries", f"{len(table.entries)} ({len(table.layers)} layers x {', '.join(table.formats)} x "
                            f"{', '.join(table.quantizers)}); {len(measured)} measured")
    if table.quantizer_seconds:
        head.add_row("quantizers", "proxy worker time " + ", ".join(f"{q} {s:.1f}s" for q, s in table.quantizer_seconds.items())
                     + " (each layer quantized alone from its calibration statistics)")
    scale = f"{table.proxy_to_kl:.3g}" + ("" if table.calibrated else " (prior, not fitted: nothing measured)")
    if table.proxy_to_kl_by_quantizer:
        scale += " (rtn), " + ", ".join(f"{v:.3g} ({q}: fitted to its statistics, measured on held-out tokens)"
                                          for q, v in table.proxy_to_kl_by_quantizer.items())
    head.add_row("proxy", f"{table.normalisation}; estimated KL = measured where measured, else proxy x {scale}")
    by_fmt = ", ".join(f"{f} {_rho(r)}" for f, r in table.spearman_by_format.items())
    head.add_row("Spearman", f"{_rho(table.spearman)} proxy vs measured KL over {len(measured)} entries" + (f" (within format: {by_fmt})" if by_fmt else ""))
    if table.timings:
        head.add_row("time", ", ".join(f"{k} {v:.1f}s" for k, v in table.timings.items()) + (f" ({table.executor})" if table.executor else " (all cached)"))
    console.print(head)
    ranking = table.layer_ranking()
    n = min(top, len(ranking))
    per = "per format (rtn, then the best of " + ", ".join(q for q in table.quantizers if q != "rtn") + ")" if len(table.quantizers) > 1 else "per format"
    console.print(_layer_table(table, f"most sensitive {n} layers: estimated KL (nats/token) {per}, * measured; Δppl of the worst measured", ranking[:n]))
    console.print(_layer_table(table, f"least sensitive {n} layers", ranking[::-1][:n]))
    for note in table.notes:
        console.print(f"[yellow]note:[/yellow] {note}")
