"""Real `autoquant` processes for the failure and load tests: a tiny model with a tokenizer,
a private cache, commands run (and killed) as separate OS processes.

Imported by the test modules (like sensitivity_fixtures.py), not a conftest.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

# The tiny model with a tokenizer the profiling tests use (tests/sensitivity/sensitivity_fixtures.py).
sys.path.insert(0, str(Path(__file__).parent / "sensitivity"))

# Small enough for seconds a search; enough trials that flushes (every 50) happen mid-run.
SEARCH_ARGS = ["--budget", "24GB", "--measure", "1", "--eval-tokens", "64", "--no-progress"]


@dataclass
class Env:
    """One test's world: a model directory and the cache every process shares."""

    model: Path
    cache: Path
    root: Path

    def environ(self) -> dict[str, str]:
        env = dict(os.environ, AUTOQUANT_CACHE=str(self.cache), HF_HUB_OFFLINE="1", TRITON_INTERPRET="1",
                   OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
        env.pop("RAY_ADDRESS", None)
        return env

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "autoquant", *args]

    def start(self, *args: str, **kwargs) -> subprocess.Popen:
        """A new session, so a kill -9 of the driver can be followed by cleaning up what it left."""
        return subprocess.Popen(self.command(*args), env=self.environ(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True, **kwargs)

    def run(self, *args: str, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
        p = self.start(*args, **kwargs)
        try:
            out, err = p.communicate(timeout=timeout)
        finally:
            end_session(p)
        return subprocess.CompletedProcess(p.args, p.returncode, out, err)

    def search(self, *args: str, timeout: float = 300) -> dict:
        """A search that must succeed; its --json result."""
        r = self.run("search", "--model", str(self.model), *SEARCH_ARGS, "--json", *args, timeout=timeout)
        assert r.returncode == 0, r.stderr[-3000:]
        assert "Traceback" not in r.stderr, r.stderr[-3000:]
        return json.loads(r.stdout)


def end_session(p: subprocess.Popen) -> None:
    """SIGKILL whatever is left of the process's session (Ray's helpers after a killed driver)."""
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass
    time.sleep(0.2)


def make_env(root: Path) -> Env:
    from sensitivity_fixtures import save_tiny_model

    root.mkdir(parents=True, exist_ok=True)
    model = root / "tiny-llama"
    save_tiny_model(model)
    return Env(model=model, cache=root / "cache", root=root)


@pytest.fixture(scope="session")
def profiled_env(tmp_path_factory) -> Env:
    """A tiny model whose sensitivity profile is already cached (one Ray worker), so searches
    started from it go straight to the study."""
    env = make_env(tmp_path_factory.mktemp("aq-failure"))
    r = env.run("profile", "--model", str(env.model), "--workers", "1", "--out", str(env.root / "profile-run"),
                "--no-progress", timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return env
