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
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
BatchOpt = Annotated[int, typer.Option("--batch", "-b", help="Concurrent sequences.")]
ContextOpt = Annotated[int, typer.Option("--context", "-c", help="Tokens per sequence (prompt + generated).")]
RuntimeOpt = Annotated[str, typer.Option(
    "--runtime", help="How the model will run: graphs (decode steps replayed as CUDA graphs, as serving engines "
                      "do) or eager (op by op, plain transformers); sets the rest-of-model latency.")]
EngineOpt = Annotated[
    Optional[str],
    typer.Option(
        "--engine",
        help="Where the plan will run: vllm (every format except int8 with zero points, int8-*-asym; "
        "groups must divide a layer's input size), transformers (-sym formats only: it cannot load zero "
        "points; whole groups only), autoquant (every format, its own checkpoint), llamacpp (GGUF block "
        "formats q8_0/q5_*/q4_*, one .gguf file). Default: llamacpp for the llamacpp space or --format gguf, "
        "else vllm. search keeps to what it loads; export refuses a plan it cannot load.",
    ),
]
QuantizerOpt = Annotated[
    Optional[str],
    typer.Option(
        "--quantizer",
        "-q",
        help="How a uniform plan's codes are chosen: rtn (round-to-nearest, default), gptq (error-compensating, "
        "calibrated on --calib text), awq (activation-aware scales folded into the norms/up_proj; "
        "o_proj and lm_head keep rtn). A plan file names each layer's own.",
    ),
]
CalibOpt = Annotated[
    Optional[str],
    typer.Option(
        "--calib",
        help="Text file the gptq/awq layers are calibrated on. Default: the text a plan file records (what its "
        "search measured), else wikitext-2 validation (embedded).",
    ),
]
QuantizersOpt = Annotated[
    Optional[str],
    typer.Option(
        "--quantizers",
        help="Only these of the search space's quantizers, comma-separated: rtn, gptq, awq (e.g. rtn for "
        "plans that need no calibration). Default: all the space allows.",
    ),
]


def split_names(names: str | None) -> tuple[str, ...] | None:
    """`rtn, gptq` -> ("rtn", "gptq"); None stays None."""
    return None if names is None else tuple(n.strip().lower() for n in names.split(",") if n.strip())
