"""`autoquant evaluate`: measured quality of a plan (perplexity, KL vs the unquantized model)."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from autoquant.costs import format_bytes
from autoquant.cli._common import CalibOpt, JsonOpt, ModelOpt, QuantizerOpt, console, err_console
from autoquant.data import calibration_text, evaluation_text
from autoquant.errors import UserError
from autoquant.memory import ModelShape, estimate_memory
from autoquant.models import load_tokenizer, resolve_model
from autoquant.plan import calibration_source, resolve_plan
from autoquant.quality import DEFAULT_EVAL_TOKENS, SEQ_LEN, load_meter
from autoquant.quantizers.calibrate import calibration_windows


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate)


def evaluate(
    plans: Annotated[list[str], typer.Option("--plan", "-p", help="Uniform format or plan file; repeat to compare several.")],
    model: ModelOpt = None,
    eval_file: Annotated[Optional[str], typer.Option("--eval", help="Evaluation text file. Default: wikitext-2 test (embedded).")] = None,
    eval_tokens: Annotated[int, typer.Option("--eval-tokens", help="Tokens of evaluation text (the same default as `autoquant search`).")] = DEFAULT_EVAL_TOKENS,
    seq_len: Annotated[Optional[int], typer.Option("--seq-len", help=f"Tokens per evaluation window. Default: {SEQ_LEN}, or --eval-tokens when fewer (as `autoquant search`).")] = None,
    quantizer: QuantizerOpt = None,
    calib: CalibOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Measure perplexity and KL divergence (vs the unquantized model) of each PLAN on held-out text.

    --quantizer applies to every uniform PLAN of the call (run it once per quantizer to compare).

    Weights are really quantized (by each layer's quantizer, then dequantized for the CPU/GPU
    forward), so the numbers are measured, not estimated. gptq/awq plans are calibrated block by
    block first (minutes for SmolLM2 on a CPU): on --calib, else on the text a plan file records
    (what its search measured), else on wikitext-2 validation.
    """
    if seq_len is None:
        seq_len = min(SEQ_LEN, eval_tokens)
    if eval_tokens < seq_len or seq_len < 2:
        raise UserError(f"--eval-tokens ({eval_tokens}) must be at least --seq-len ({seq_len}), and --seq-len at least 2")
    source = resolve_model(model)
    text = evaluation_text(eval_file, calib=calibration_text(calib))
    shape = ModelShape.from_source(source)
    layers = list(shape.layers)
    resolved = [(p, resolve_plan(p, layers, source.display, quantizer)) for p in plans]
    calib_texts = {}  # plan -> its calibration text, found (or refused) before the model loads
    for name, plan in resolved:
        if plan.calibrated:
            calib_texts[name], note = calibration_source(plan, calib)
            if note:
                err_console.print(f"note: {name}: {note}")
    rows = []
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=err_console, transient=True) as bar:
        task = bar.add_task(f"loading model, reference forward ({eval_tokens} tokens)", total=None)
        # the search measures its plans through the same `load_meter`: the same numbers
        meter = load_meter(source, text, eval_tokens, seq_len)
        windows = {}  # calibration windows by text, for the calibrated plans
        for name, plan in resolved:
            bar.update(task, description=f"evaluating {name}")
            if plan.calibrated:
                calib_text = calib_texts[name]
                if calib_text.fingerprint not in windows:
                    windows[calib_text.fingerprint] = calibration_windows(load_tokenizer(source), calib_text)
                meter.calibration = windows[calib_text.fingerprint]
            result = meter.measure(plan)
            mem = estimate_memory(shape, plan)
            uniform_q = plan.metadata.get("quantizer", "rtn") if "uniform" in plan.metadata else None
            rows.append({
                "plan": name if uniform_q in (None, "rtn") else f"{name} ({uniform_q})",
                "quantizer": uniform_q or "per layer",
                "perplexity": result.perplexity,
                "ppl_change": result.ppl_change,
                "kl": result.kl,
                "linear_bits_per_weight": plan.bits_per_weight(layers),
                "weights_bytes": mem.weights_bytes,
                "seconds": result.seconds,
            })
    ref = meter.reference
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
