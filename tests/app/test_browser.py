"""`autoquant app` served for real and opened in headless Chromium: each view draws its charts.

Screenshots are kept under tests/artifacts/browser/ (ignored by git). Needs Debian's chromium:
.ci/run installs it and sets AUTOQUANT_BROWSER_TESTS=required, so there a missing browser fails;
elsewhere the test is skipped, saying why.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from browser import CHROMIUM, open_views, running_app

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "browser"


@pytest.fixture(scope="module")
def browser_ready():
    if not Path(CHROMIUM).exists():
        if os.environ.get("AUTOQUANT_BROWSER_TESTS") == "required":
            pytest.fail(f"{CHROMIUM} missing: apt-get install chromium")
        pytest.skip(f"{CHROMIUM} missing (apt-get install chromium); .ci/run installs it")


def test_every_view_renders_in_chromium(browser_ready, searched_runs):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with running_app(searched_runs, ARTIFACTS / "app.log") as url:
        seen = open_views(url, ARTIFACTS)
    for view, got in seen.items():
        assert got["exceptions"] == 0, f"{view}: {got['text'][:500]}"
        assert (ARTIFACTS / f"{view.lower().replace(' ', '-')}.png").stat().st_size > 20_000
    front, sens, plan, compare = (seen[v] for v in ("Pareto front", "Sensitivity", "Plan", "Compare runs"))
    assert front["charts"] >= 2 and "Recommended:" in front["text"] and front["tables"] >= 1
    assert sens["charts"] >= 1 and "Most sensitive" in sens["text"]
    assert plan["charts"] >= 1 and plan["tables"] >= 1 and "Download plan (JSON)" in plan["text"]
    assert compare["charts"] >= 1 and compare["tables"] >= 1 and "b549_6mb" in compare["text"]
