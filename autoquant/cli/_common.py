"""Options and helpers shared by the command modules."""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.console import Console

console = Console()  # results: stdout
err_console = Console(stderr=True)  # progress and notes: stderr, so --json output stays clean

ModelOpt = Annotated[
    Optional[str],
    typer.Option(
        "--model",
        "-m",
        help="Hugging Face hub id, local model directory, or .gguf file. "
        "Default: the embedded SmolLM2-135M-Instruct.",
    ),
]
QuantizerOpt = Annotated[
    Optional[str],
    typer.Option(
        "--quantizer",
        "-q",
        help="How a uniform --plan chooses codes: rtn (round-to-nearest), gptq, or awq (where its scales "
        "fold: q/k/v, gate/up, down; rtn elsewhere). gptq/awq calibrate on wikitext-2 validation.",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
BatchOpt = Annotated[int, typer.Option("--batch", "-b", help="Concurrent sequences.")]
ContextOpt = Annotated[int, typer.Option("--context", "-c", help="Tokens per sequence (prompt + generated).")]
