"""`autoquant export`: a plan applied for real, written as a loadable quantized checkpoint."""

from __future__ import annotations

from typing import Annotated

import typer

from autoquant.budgets import format_bytes
from autoquant.cli._common import ModelOpt, QuantizerOpt, console, err_console
from autoquant.export import export_checkpoint
from autoquant.memory import ModelShape
from autoquant.models import resolve_model
from autoquant.plan import resolve_plan


def register(app: typer.Typer) -> None:
    app.command("export")(export)


def export(
    plan: Annotated[str, typer.Option("--plan", "-p", help="Plan file (e.g. runs/.../plan.json) or a uniform format.")],
    out: Annotated[str, typer.Option("--out", "-o", help="New directory for the checkpoint.")],
    model: ModelOpt = None,
    bf16: Annotated[bool, typer.Option("--bf16", help="Keep unquantized tensors in bf16 instead of fp16.")] = False,
    quantizer: QuantizerOpt = None,
) -> None:
    """Quantize MODEL under PLAN and write a checkpoint: packed safetensors + config + tokenizer + plan.

    Load it with `autoquant.export.load_quantized(DIR)` (Triton kernels on CUDA, reference path on CPU).
    """
    import torch

    source = resolve_model(model)
    the_plan = resolve_plan(plan, list(ModelShape.from_source(source).layers), source.display, quantizer)
    with err_console.status(f"quantizing {source.display} ({the_plan.summary()})"):
        path = export_checkpoint(source, the_plan, out, dtype=torch.bfloat16 if bf16 else torch.float16)
    size = sum(f.stat().st_size for f in path.iterdir() if f.is_file())
    console.print(f"wrote {path} ({format_bytes(size)})")
