"""`autoquant app` at the edge: bad input is one line and exit 2, before any server starts
(the server itself is started for real by test_browser.py)."""

from __future__ import annotations

import socket

from autoquant.cli import main


def test_a_busy_port_is_one_line(tmp_path, capsys):
    with socket.socket() as s:
        s.bind(("", 0))
        s.listen()
        port = s.getsockname()[1]
        assert main(["app", "--runs-dir", str(tmp_path), "--port", str(port)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"autoquant: error: port {port} is in use; choose another with --port"


def test_runs_dir_that_is_a_file(tmp_path, capsys):
    f = tmp_path / "front.json"
    f.write_text("{}")
    assert main(["app", "--runs-dir", str(f)]) == 2
    assert "is not a directory" in capsys.readouterr().err


def test_port_out_of_range_is_a_usage_error(capsys):
    assert main(["app", "--port", "70000"]) == 2
