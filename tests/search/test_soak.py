"""The soak bench, small: back-to-back searches resume one study, each adding exactly its
trials, and a resumed run's resident memory does not grow with the study (bench/soak.py runs
20 on SmolLM2 or a tiny model; results in bench/results/)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.ray  # the shared profile is made by one Ray worker first

BENCH = Path(__file__).resolve().parents[2] / "bench" / "soak.py"


def test_back_to_back_searches_resume_one_study(profiled_env, tmp_path):
    env = profiled_env
    out = tmp_path / "soak.json"
    r = subprocess.run([sys.executable, str(BENCH), "--runs", "3", "--model", str(env.model), "--trials", "60",
                        "--measure", "1", "--eval-tokens", "64", "--out", str(out)],
                       env=env.environ(), capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads(out.read_text())
    assert [run["trials"] for run in result["runs"]] == [60, 120, 180]  # each resumed the study
    # Peak RSS of the resumed runs: the study tripled, the process must not grow with it.
    rss = [run["max_rss_mb"] for run in result["runs"][1:]]
    assert rss[-1] < rss[0] * 1.1, rss
