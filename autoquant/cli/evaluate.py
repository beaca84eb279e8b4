"""`autoquant evaluate`: measured quality of a plan (perplexity, KL vs the unquantized model)."""

from __future__ import annotations

import json
import time
from typing import Annotated, Optional

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from autoquant.apply import apply_plan
from autoquant.budgets import format_bytes
from autoquant.calibration import input_moments, needs_calibration
from autoquant.cli._common import JsonOpt, ModelOpt, QuantizerOpt, console, err_console
from autoquant.data import calibration_text, evaluation_text, token_windows
from autoquant.errors import UserError
from autoquant.evaluate import QualityEvaluator
from autoquant.memory import ModelShape, estimate_memory
from autoquant.models import load_model, load_tokenizer, resolve_model
from autoquant.plan import resolve_plan


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate)


def evaluate(
    plans: Annotated[list[str], typer.Option("--plan", "-p", help="Uniform format or plan file; repeat to compare several.")],
    model: ModelOpt = None,
    eval_file: Annotated[Optional[str], typer.Option("--eval", help="Evaluation text file. Default: wikitext-2 test (embedded).")] = None,
    eval_tokens: Annotated[int, typer.Option("--eval-tokens", help="Tokens of evaluation text.")] = 8192,
    seq_len: Annotated[int, typer.Option("--seq-len", help="Tokens per evaluation window.")] = 512,
    as_json: JsonOpt = False,
    quantizer: QuantizerOpt = None,
) -> None:
    """Measure perplexity and KL divergence (vs the unquantized model) of each PLAN on held-out text.

    Weights are really quantized (by --quantizer, round-to-nearest by default; then dequantized for
    the CPU/GPU forward), so the numbers are measured, not estimated.
    """
    if eval_tokens < seq_len or seq_len < 2:
        raise UserError(f"--eval-tokens ({eval_tokens}) must be at least --seq-len ({seq_len}), and --seq-len at least 2")
    source = resolve_model(model)
    text = evaluation_text(eval_file, calib=calibration_text())
    shape = ModelShape.from_source(source)
    layers = list(shape.layers)
    resolved = [(p, resolve_plan(p, layers, source.display, quantizer)) for p in plans]
    rows = []
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=err_console, transient=True) as bar:
        task = bar.add_task("loading model", total=None)
        reference_model = load_model(source)
        windows = token_windows(load_tokenizer(source), text, seq_len, eval_tokens)
        bar.update(task, description=f"reference forward ({windows.numel()} tokens)")
        evaluator = QualityEvaluator(reference_model, windows)
        del reference_model
        moments = None
        for name, plan in resolved:
            bar.update(task, description=f"evaluating {name}")
            t0 = time.perf_counter()
            quantized = load_model(source)
            if needs_calibration(plan) and moments is None:
                bar.update(task, description="calibration pass (gptq/awq input moments)")
                moments = input_moments(quantized, load_tokenizer(source))
            result = evaluator.evaluate(apply_plan(quantized, plan, mode="fake", calibration=moments))
            mem = estimate_memory(shape, plan)
            rows.append({
                "plan": name,
                "perplexity": result.perplexity,
                "ppl_change": result.ppl_change(evaluator.reference.perplexity),
                "kl": result.kl,
                "linear_bits_per_weight": plan.bits_per_weight(layers),
                "weights_bytes": mem.weights_bytes,
                "seconds": time.perf_counter() - t0,
            })
    ref = evaluator.reference
    if as_json:
        console.print_json(json.dumps({
            "model": source.display, "eval_text": text.name, "tokens": ref.tokens,
            "reference_perplexity": ref.perplexity, "plans": rows,
        }))
        return
    table = Table(title=f"{source.display}: {ref.tokens} tokens of {text.name}; unquantized ppl {ref.perplexity:.3f}", title_justify="left")
    table.add_column("plan", no_wrap=True)
    for col in ("bits/weight", "weights", "perplexity", "Δppl", "KL (nats/token)"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(r["plan"], f"{r['linear_bits_per_weight']:.2f}", format_bytes(r["weights_bytes"]),
                      f"{r['perplexity']:.3f}", f"{r['ppl_change'] * 100:+.2f}%", f"{r['kl']:.4f}")
    console.print(table)
