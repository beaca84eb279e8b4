"""`autoquant estimate`: peak serving memory of a model under a plan (no weights loaded)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from autoquant.costs import format_bytes
from autoquant.cli._common import BatchOpt, ContextOpt, JsonOpt, ModelOpt, console
from autoquant.errors import UserError
from autoquant.memory import ModelShape, estimate_memory
from autoquant.models import resolve_model
from autoquant.plan import resolve_plan
from autoquant.cli._common import QuantizerOpt


def register(app: typer.Typer) -> None:
    app.command("estimate")(estimate)


def estimate(
    plan: Annotated[str, typer.Option("--plan", "-p", help="A uniform format (fp16, int8-pc-sym, int4-g128-asym, ...) or a plan file.")] = "fp16",
    model: ModelOpt = None,
    batch: BatchOpt = 1,
    context: ContextOpt = 4096,
    as_json: JsonOpt = False,
    quantizer: QuantizerOpt = None,  # changes which codes, never their bytes: validated, same memory
) -> None:
    """Estimate the peak VRAM of serving MODEL under PLAN: weights, KV cache, activations, overhead.

    Needs only the model's config: a directory holding just config.json plans a 70B model on a laptop.
    """
    if batch < 1 or context < 1:
        raise UserError(f"--batch and --context must be at least 1 (got {batch}, {context})")
    source = resolve_model(model)
    shape = ModelShape.from_source(source)
    the_plan = resolve_plan(plan, list(shape.layers), source.display, quantizer)
    est = estimate_memory(shape, the_plan, batch=batch, context=context)
    bpw = the_plan.bits_per_weight(list(shape.layers))
    if as_json:
        out = {"model": source.display, "plan": plan, "params": shape.total_params, "linear_bits_per_weight": round(bpw, 4), **est.to_dict()}
        console.print_json(json.dumps(out))
        return
    table = Table(title=f"{source.display} under {plan}: batch {batch}, context {context}", title_justify="left")
    table.add_column("component")
    table.add_column("bytes", justify="right")
    table.add_column("", justify="right")
    rows = [
        ("linear weights", est.linear_bytes, f"{bpw:.2f} bits/weight"),
        ("embeddings", est.embedding_bytes, "16-bit"),
        ("norms, biases", est.other_bytes, "16-bit"),
        ("KV cache", est.kv_cache_bytes, "16-bit"),
        ("activations", est.activation_bytes, "prefill workspace"),
        ("runtime overhead", est.overhead_bytes, "512 MiB + 5%"),
    ]
    for name, n, note in rows:
        table.add_row(name, format_bytes(n), note)
    table.add_section()
    table.add_row("[bold]total[/bold]", f"[bold]{format_bytes(est.total_bytes)}[/bold]", f"{est.total_bytes / 2**30:.2f} GiB")
    console.print(table)
