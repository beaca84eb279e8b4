"""`autoquant estimate`: peak serving memory and latency of a model under a plan (no weights loaded)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from autoquant.cli._common import BatchOpt, ContextOpt, JsonOpt, ModelOpt, QuantizerOpt, RuntimeOpt, console
from autoquant.cli.hardware import HardwareOpt
from autoquant.costs import format_bytes, format_seconds, plan_costs
from autoquant.errors import UserError
from autoquant.hardware import latency_model_for
from autoquant.memory import ModelShape, estimate_memory
from autoquant.models import resolve_model
from autoquant.plan import resolve_plan


def register(app: typer.Typer) -> None:
    app.command("estimate")(estimate)


def estimate(
    plan: Annotated[str, typer.Option("--plan", "-p", help="A uniform format (fp16, int8-pc-sym, int4-g128-asym, ...) or a plan file.")] = "fp16",
    model: ModelOpt = None,
    batch: BatchOpt = 1,
    context: ContextOpt = 4096,
    hardware: HardwareOpt = None,
    runtime: RuntimeOpt = "graphs",
    as_json: JsonOpt = False,
    quantizer: QuantizerOpt = None,  # changes which codes, never their bytes: validated, same memory
) -> None:
    """Estimate the peak VRAM of serving MODEL under PLAN (weights, KV cache, activations, overhead) and its latency.

    Needs only the model's config: a directory holding just config.json plans a 70B model on a laptop.
    Latency comes from a measured profile of the GPU where one covers the model, else the roofline (labelled estimated).
    """
    if batch < 1 or context < 1:
        raise UserError(f"--batch and --context must be at least 1 (got {batch}, {context})")
    source = resolve_model(model)
    shape = ModelShape.from_source(source)
    the_plan = resolve_plan(plan, list(shape.layers), source.display, quantizer)
    try:
        lat_model = latency_model_for(hardware, shape, runtime)
    except ValueError as e:
        raise UserError(f"--runtime: {e}") from None
    costs = plan_costs(shape, the_plan, lat_model, batch, context)  # the numbers search and the app show
    est = estimate_memory(shape, the_plan, batch=batch, context=context)  # the memory total's parts
    label = "estimated" if costs.latency_estimated else "measured"
    if as_json:
        out = {"model": source.display, "plan": plan, "params": shape.total_params,
               "linear_bits_per_weight": round(costs.bits_per_weight, 4), **est.to_dict(),
               "decode_s": costs.decode_s, "prefill_s": costs.prefill_s, "latency_estimated": costs.latency_estimated,
               "latency_source": lat_model.name, "runtime": runtime}
        console.print_json(json.dumps(out))
        return
    table = Table(title=f"{source.display} under {plan}: batch {batch}, context {context}", title_justify="left")
    table.add_column("component")
    table.add_column("bytes", justify="right")
    table.add_column("", justify="right")
    rows = [
        ("linear weights", est.linear_bytes, f"{costs.bits_per_weight:.2f} bits/weight"),
        ("embeddings", est.embedding_bytes, _embedding_note(shape, the_plan)),
        ("norms, biases", est.other_bytes, "16-bit"),
        ("KV cache", est.kv_cache_bytes, "16-bit"),
        ("activations", est.activation_bytes, "prefill workspace"),
        ("runtime overhead", est.overhead_bytes, "512 MiB + 5%"),
    ]
    for name, n, note in rows:
        table.add_row(name, format_bytes(n), note)
    table.add_section()
    table.add_row("[bold]total[/bold]", f"[bold]{format_bytes(costs.memory_bytes)}[/bold]", f"{costs.memory_bytes / 2**30:.2f} GiB")
    console.print(table)
    console.print(f"latency on {lat_model.name}: decode step {format_seconds(costs.decode_s)}, "
                  f"prefill {format_seconds(costs.prefill_s)} ({label})")


def _embedding_note(shape: ModelShape, plan) -> str:
    """A tied head in a GGUF block format holds the embedding: say where its bytes went."""
    head = next((l for l in shape.layers if l.tied), None)
    if head is not None and plan.format_of(head).is_gguf:
        return f"tied: lm_head's {plan.format_of(head)}, in linear weights"
    return "16-bit"
