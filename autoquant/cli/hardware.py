"""`autoquant hardware`: GPU specs, measured latency profiles, plan latency.

    autoquant hardware list                       measured profiles (built in, saved) and GPU specs
    autoquant hardware profile --model M          time M's layer shapes in every format (GPU)
    autoquant hardware latency --model M --plan P decode / prefill latency of a plan
"""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer
from rich.table import Table

from autoquant.costs import format_bytes, format_seconds
from autoquant.cli._common import BatchOpt, ContextOpt, JsonOpt, ModelOpt, RuntimeOpt, console, err_console
from autoquant.errors import UserError
from autoquant.formats import QuantFormat, all_formats
from autoquant.hardware.latency import (all_profiles, choose_profile, latency_model_for, local_gpu_name,
                                        plan_latency, profile_spec)
from autoquant.hardware.profile import DEFAULT_BUCKETS, profile_dir
from autoquant.hardware.specs import BUILTIN_SPECS

_BUCKETS = ",".join(map(str, DEFAULT_BUCKETS))

HardwareOpt = Annotated[
    Optional[str],
    typer.Option("--hardware", help="Built-in GPU name (h100, a100, l4, ...) or a profile JSON. Default: this machine's GPU."),
]

hardware_app = typer.Typer(help="GPU specs, latency profiles and plan latency.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(hardware_app, name="hardware")


def _profile_label(path, prof, origin: str) -> str:
    return f"measured: {path.name} ({origin})"


@hardware_app.command("list")
def list_hardware(as_json: JsonOpt = False) -> None:
    """Show the measured latency profiles (built in and saved here) and the built-in GPU specs."""
    profiles = all_profiles()
    in_use = {s.name: choose_profile(lambda p, s=s: profile_spec(p) == s) for s in BUILTIN_SPECS}
    if as_json:
        console.print_json(json.dumps({
            "profile_dir": str(profile_dir()),
            "profiles": [{"path": str(p), "origin": origin, "gpu": prof.gpu, "model": prof.model,
                          "created": prof.created, "shapes": len(prof.layers), "buckets": prof.buckets}
                         for p, prof, origin in profiles],
            "specs": [s.to_dict() | {"profile": None if in_use[s.name] is None else str(in_use[s.name][0])}
                      for s in BUILTIN_SPECS],
        }))
        return
    table = Table(title=f"measured latency profiles: built in, and saved in {profile_dir()}", title_justify="left")
    for col in ("GPU", "origin", "model", "driver", "created", "shapes x formats", "file"):
        table.add_column(col)
    for path, prof, origin in profiles:
        n_fmt = max((len(v) for v in prof.layers.values()), default=0)
        table.add_row(prof.gpu_name, origin, prof.model, str(prof.gpu.get("driver", "?")), prof.created[:10],
                      f"{len(prof.layers)} x {n_fmt}", path.name if origin == "built-in" else str(path))
    console.print(table)
    specs = Table(title="built-in GPU specs (datasheet peaks; latency from a spec alone is estimated)",
                  title_justify="left")
    for col in ("name", "GPU", "memory", "bandwidth", "fp16 dense", "latency from"):
        specs.add_column(col, justify="right" if col in ("memory", "bandwidth", "fp16 dense") else "left")
    for s in BUILTIN_SPECS:
        chosen = in_use[s.name]
        source = "roofline (estimated)" if chosen is None else _profile_label(*chosen)
        specs.add_row(s.name, s.full_name, format_bytes(s.memory_bytes), f"{s.bandwidth / 1e12:.2f} TB/s",
                      f"{s.fp16_flops / 1e12:.0f} TFLOP/s", source)
    console.print(specs)
    console.print("figures from: " + "; ".join(
        f"{s.name}: {s.source}" + (f" ({s.note})" if s.note else "") for s in BUILTIN_SPECS), style="dim")
    local = local_gpu_name()
    console.print(f"this machine: {local or 'no CUDA GPU'}; default latency model: {latency_model_for(None).name}")


def _parse_list(text: str, parse, what: str) -> list:
    try:
        return [parse(t) for t in text.split(",") if t.strip()]
    except ValueError as e:
        raise UserError(f"{what}: {e}") from None


@hardware_app.command("profile")
def profile(
    model: ModelOpt = None,
    formats: Annotated[Optional[str], typer.Option("--formats", help="Comma-separated formats. Default: all.")] = None,
    buckets: Annotated[str, typer.Option("--buckets", help="Token counts to time, comma-separated.")] = _BUCKETS,
    output: Annotated[Optional[str], typer.Option("--output", "-o", help="Profile JSON path. Default: the profile directory.")] = None,
    rest: Annotated[bool, typer.Option("--rest/--no-rest", help="Also time whole 16-bit forwards to fit the rest-of-model allowance.")] = True,
) -> None:
    """Time every (layer shape, format, token bucket) MODEL needs on this GPU; save a versioned profile.

    Needs only the model's config: weights are random. Kernel configs are autotuned and cached.
    """
    import torch

    if not torch.cuda.is_available():
        raise UserError("hardware profile needs a CUDA GPU; elsewhere latency comes from the roofline (estimated)")
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from autoquant.hardware.measure import run_profile
    from autoquant.memory import ModelShape
    from autoquant.models import load_config, resolve_model

    fmts = _parse_list(formats, QuantFormat.parse, "--formats") if formats else all_formats()
    toks = _parse_list(buckets, int, "--buckets")
    if not toks or min(toks) < 1:
        raise UserError(f"--buckets must be positive token counts, e.g. {_BUCKETS}")
    source = resolve_model(model)
    config = load_config(source)
    shape = ModelShape.from_source(source)
    n_shapes = len({(l.out_features, l.in_features) for l in shape.layers})
    total = n_shapes * len(set(fmts) | {QuantFormat("fp16")}) + (8 if rest else 0)  # 4 forwards x 2 runtimes
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=err_console) as bar:
        task = bar.add_task("profiling", total=total)
        prof = run_profile(shape, source.display, fmts, toks, config if rest else None,
                           progress=lambda what: bar.update(task, advance=1, description=what))
    path = prof.save(output)
    console.print(f"profile of {prof.gpu_name} for {source.display}: {n_shapes} shapes x {len(fmts)} formats x "
                  f"{len(toks)} buckets; bandwidth {prof.bandwidth / 1e12:.2f} TB/s, fp16 {prof.fp16_flops / 1e12:.0f} TFLOP/s")
    console.print(f"saved {path}")


@hardware_app.command("latency")
def latency(
    plan: Annotated[str, typer.Option("--plan", "-p", help="A uniform format or a plan file.")] = "fp16",
    model: ModelOpt = None,
    hardware: HardwareOpt = None,
    batch: BatchOpt = 1,
    context: ContextOpt = 4096,
    runtime: RuntimeOpt = "graphs",
    as_json: JsonOpt = False,
) -> None:
    """Decode and prefill latency of MODEL under PLAN: measured from a profile, or estimated from a roofline."""
    from autoquant.memory import ModelShape
    from autoquant.models import resolve_model
    from autoquant.plan import resolve_plan

    if batch < 1 or context < 1:
        raise UserError(f"--batch and --context must be at least 1 (got {batch}, {context})")
    source = resolve_model(model)
    shape = ModelShape.from_source(source)
    try:
        lat_model = latency_model_for(hardware, shape, runtime)
    except ValueError as e:
        raise UserError(f"--runtime: {e}") from None
    the_plan = resolve_plan(plan, list(shape.layers), source.display)
    lat = plan_latency(shape, the_plan, lat_model, batch, context)
    if as_json:
        console.print_json(json.dumps({"model": source.display, "plan": plan, **lat.to_dict()}))
        return
    label = lat.label
    table = Table(title=f"{source.display} under {plan} on {lat.source}: batch {batch}, context {context}",
                  title_justify="left")
    for col in ("", "linear layers", "rest of model", "total"):
        table.add_column(col, justify="right")
    table.add_row("decode step", format_seconds(lat.linear_decode_s), format_seconds(lat.rest_decode_s),
                  f"{format_seconds(lat.decode_s)} ({label})")
    table.add_row("prefill", format_seconds(lat.linear_prefill_s), format_seconds(lat.rest_prefill_s),
                  f"{format_seconds(lat.prefill_s)} ({label})")
    console.print(table)
    if lat.estimated:
        err_console.print(f"note: estimated — no measured profile covers every layer of this plan and the rest "
                          f"of the model ({runtime}) on this GPU")
