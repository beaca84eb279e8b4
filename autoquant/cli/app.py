"""`autoquant app`: the Streamlit app on a runs directory (the front, sensitivity, plans, export)."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from typing import Annotated

import typer

from autoquant.cli._common import err_console
from autoquant.errors import UserError


def register(app: typer.Typer) -> None:
    app.command("app")(start_app)


def _check_port_free(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("", port))
        except OSError:
            raise UserError(f"port {port} is in use; choose another with --port") from None


def start_app(
    runs_dir: Annotated[str, typer.Option("--runs-dir", help="Where `autoquant search` wrote its runs.")] = "runs",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port to serve on.")] = 8501,
    address: Annotated[str, typer.Option("--address", help="Address to listen on (0.0.0.0: every interface).")] = "localhost",
) -> None:
    """Browse search runs: Pareto front, per-layer sensitivity, a plan by block, runs compared, export.

    Serves until interrupted (Ctrl-C). Open http://localhost:PORT in a browser.
    """
    from autoquant.app import PAGE

    path = Path(runs_dir)
    if path.exists() and not path.is_dir():
        raise UserError(f"--runs-dir {runs_dir} is not a directory")
    if not path.exists():
        err_console.print(f"[dim]note: {runs_dir} does not exist yet; the app will show runs once a search writes them[/dim]")
    _check_port_free(port)
    err_console.print(f"autoquant app on http://{address}:{port} (runs: {path.resolve()}); Ctrl-C stops it")
    args = [sys.executable, "-m", "streamlit", "run", str(PAGE), "--server.port", str(port), "--server.address", address,
            "--server.headless", "true", "--browser.gatherUsageStats", "false", "--", "--runs-dir", str(path.resolve())]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, args)  # the server becomes this process: Ctrl-C and kill reach it directly
