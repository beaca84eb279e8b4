"""The `autoquant` command: thin, it parses, validates and calls library functions.

Each command group lives in its own module with a `register(app)` function.
Errors a user can cause (`UserError`) print one line on stderr and exit with the
error's code (2 for bad input, 3 when no plan fits); typer's own usage errors also exit 2.
"""

from __future__ import annotations

import sys

import typer

from autoquant.cli import app as app_cmd
from autoquant.cli import estimate, evaluate, export, hardware, profile, schedule, search
from autoquant.errors import UserError

app = typer.Typer(
    name="autoquant",
    help="Find the best mixed-precision quantization plan for an LLM on a given GPU.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

for _module in (search, profile, evaluate, estimate, hardware, export, schedule, app_cmd):
    _module.register(app)


_INTERRUPTED = "autoquant: interrupted (finished work is cached; re-run to resume)"


@app.callback()
def _root() -> None:
    """Find the best mixed-precision quantization plan for an LLM on a given GPU."""


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point. Returns the exit code (also used by tests)."""
    try:
        app(args=argv, prog_name="autoquant")  # standalone: usage errors print and exit 2
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if code == 130:  # typer turns Ctrl-C into Exit(130) before it reaches us
            print(_INTERRUPTED, file=sys.stderr)
        return code
    except UserError as e:
        print(f"autoquant: error: {e.for_cli()}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(_INTERRUPTED, file=sys.stderr)
        return 130
    return 0


def entry() -> None:
    sys.exit(main())
