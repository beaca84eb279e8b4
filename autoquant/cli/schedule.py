"""`autoquant schedule`: searches for a fleet of models x GPUs, re-run when their inputs change.

    autoquant schedule run FLEET.yaml [--catalog DIR] [--address RAY]   search the stale targets
    autoquant schedule status FLEET.yaml [--catalog DIR]                current / stale, and why
    autoquant schedule install FLEET.yaml --cron "0 3 * * 1" [--remove | --print k8s|systemd]

Exit codes: 0 ok; 1 some target's search failed (the others are recorded; it stays stale);
2 bad input (one line naming the spec file and key).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from autoquant.cli._common import JsonOpt, console, err_console
from autoquant.errors import UserError
from autoquant.schedule import DEFAULT_CATALOG_DIR, load_fleet, read_catalog, run_schedule, target_status

schedule_app = typer.Typer(help="Scheduled searches for a fleet: re-search what changed, keep a catalog.",
                           no_args_is_help=True)

FleetArg = Annotated[str, typer.Argument(help="Fleet spec YAML: models, hardware, workloads, budgets, space, trials.")]
CatalogOpt = Annotated[str, typer.Option("--catalog", help="Catalog directory (catalog.json, CHANGES.md, plans).")]
AddressOpt = Annotated[Optional[str], typer.Option("--address", help="Ray cluster address. Default: a local Ray (or RAY_ADDRESS).")]


def register(app: typer.Typer) -> None:
    app.add_typer(schedule_app, name="schedule")


def _status_table(statuses) -> Table:
    table = Table(title_justify="left")
    for col in ("target", "state", "why / recommended"):
        table.add_column(col, overflow="fold")
    for s in statuses:
        if not s.current:
            detail = "; ".join(s.reasons)
        elif s.entry.feasible:
            e = s.entry
            detail = (f"{e.memory_bytes / 1e9:.3f} GB, KL {e.quality.kl:.4f}, decode {e.latency.decode_ms:.2f} ms "
                      f"({'estimated' if e.latency.estimated else 'measured'}), searched {e.date[:16]}")
        else:
            detail = "infeasible: " + s.entry.reason.split(";")[0]
        style = {"current": "green", "stale": "yellow", "new": "cyan"}[s.state]
        table.add_row(s.id, f"[{style}]{s.state}[/{style}]", detail)
    return table


@schedule_app.command("status")
def status(fleet: FleetArg, catalog: CatalogOpt = DEFAULT_CATALOG_DIR, as_json: JsonOpt = False) -> None:
    """List every target of FLEET as current, stale or new, and why it is stale."""
    spec = load_fleet(fleet)
    statuses = target_status(spec, read_catalog(catalog))
    if as_json:
        console.print_json(json.dumps({"catalog": str(Path(catalog)), "targets": [
            {"id": s.id, "state": s.state, "reasons": list(s.reasons), "fingerprint": s.resolved.fingerprint,
             "latency_source": s.resolved.latency_source} for s in statuses]}))
        return
    table = _status_table(statuses)
    stale = sum(not s.current for s in statuses)
    table.title = f"{len(statuses)} targets of {fleet}: {stale} to search, {len(statuses) - stale} current (catalog {catalog})"
    console.print(table)


@schedule_app.command("run")
def run(
    fleet: FleetArg,
    catalog: CatalogOpt = DEFAULT_CATALOG_DIR,
    address: AddressOpt = None,
    workers: Annotated[int, typer.Option("--workers", help="Searches at once (each loads the model to measure plans).")] = 1,
    force: Annotated[bool, typer.Option("--force", help="Search every target, current or not.")] = False,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="No progress lines (cron).")] = False,
) -> None:
    """Search every stale target of FLEET on Ray (each model profiled once); update the catalog and CHANGES.md."""
    spec = load_fleet(fleet)
    say = (lambda msg: None) if no_progress else (lambda msg: err_console.print(msg, highlight=False))
    report = run_schedule(spec, catalog, address=address, workers=workers, force=force, on_event=say)
    searched = len(report.outcomes)
    console.print(f"{searched} searched, {len(report.statuses) - searched} current, {len(report.failed)} failed "
                  f"in {report.seconds:.1f} s; catalog {Path(catalog) / 'catalog.json'}, changes in "
                  f"{Path(catalog) / 'CHANGES.md'}")
    if report.failed:
        for o in report.failed:
            err_console.print(f"autoquant: target {o.target_id} failed: {o.error}", highlight=False)
        raise typer.Exit(1)


@schedule_app.command("install")
def install(
    fleet: FleetArg,
    cron: Annotated[str, typer.Option("--cron", help="When to run, as cron fields, e.g. \"0 3 * * 1\" (Mondays 03:00).")] = "0 3 * * 1",
    catalog: CatalogOpt = DEFAULT_CATALOG_DIR,
    address: AddressOpt = None,
    remove: Annotated[bool, typer.Option("--remove", help="Remove this spec's crontab entry.")] = False,
    print_kind: Annotated[Optional[str], typer.Option("--print", help="Print instead of installing: k8s (a CronJob) or systemd (service + timer).")] = None,
    image: Annotated[str, typer.Option("--image", help="Container image for --print k8s.")] = "autoquant:latest",
) -> None:
    """Run `schedule run FLEET` on a schedule: a crontab entry, or print a Kubernetes CronJob / systemd timer."""
    from autoquant.schedule import install as inst

    fleet_path = str(Path(fleet).resolve())
    catalog_path = str(Path(catalog).resolve())
    if remove:
        found = inst.remove_cron(fleet_path)
        console.print(f"removed the crontab entry for {fleet_path}" if found else f"no crontab entry for {fleet_path}")
        return
    load_fleet(fleet)  # a broken spec fails now, not at 03:00
    if print_kind is None:
        line = inst.install_cron(cron, fleet_path, catalog_path, address)
        console.print(f"installed in the crontab:\n{line}", highlight=False, soft_wrap=True)
        return
    if print_kind == "k8s":
        console.print(inst.k8s_cronjob(cron, fleet_path, catalog_path, address, image), highlight=False, soft_wrap=True)
    elif print_kind == "systemd":
        console.print(inst.systemd_units(cron, fleet_path, catalog_path, address), highlight=False, soft_wrap=True)
    else:
        raise UserError(f"--print takes k8s or systemd, got {print_kind!r}")
