"""Drive `autoquant app` in Debian's headless Chromium (Playwright, no browser download).

Used by test_browser.py, and to make the README's screenshots from a real run:

    .venv/bin/python tests/app/browser.py RUNS_DIR docs/img
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
# view (tab) -> (charts it draws, a text it shows once its script part has run)
VIEWS = {"Pareto front": (2, "Recommended"), "Sensitivity": (1, "Most sensitive"), "Plan": (1, "Download plan"),
         "Compare runs": (1, "Schedule catalog")}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_app(runs_dir: Path, log: Path, timeout: float = 120):
    """`autoquant app` as a subprocess on a free port; yields its URL once it answers."""
    port = free_port()
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "autoquant", "app", "--runs-dir", str(runs_dir), "--port", str(port),
                                 "--address", "127.0.0.1"], stdout=out, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + timeout
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"autoquant app exited {proc.returncode}: {log.read_text()[-2000:]}")
                try:
                    with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                        if r.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"autoquant app did not answer on {url} in {timeout} s")
                time.sleep(0.5)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


_VISIBLE_CHARTS = """[...document.querySelectorAll('.vega-embed canvas, .vega-embed svg.marks')]
    .filter(c => { const r = c.getBoundingClientRect(); return r.width > 50 && r.height > 50; }).length"""


def visible_charts(page) -> int:
    """Rendered Vega charts in the visible tab: a canvas or svg of real size inside .vega-embed."""
    return page.evaluate(f"() => {_VISIBLE_CHARTS}")


def wait_for_view(page, charts: int, text: str, timeout_ms: int = 120_000) -> None:
    """Until the visible tab shows `text` and draws `charts` charts (the app may still be running
    its script on a loaded machine); on timeout the caller's checks say what is missing."""
    js = f"""() => {{ const p = [...document.querySelectorAll('[role="tabpanel"]')].find(e => e.offsetParent !== null);
        return !!p && p.innerText.includes({text!r}) && ({_VISIBLE_CHARTS}) >= {charts}; }}"""
    with contextlib.suppress(Exception):
        page.wait_for_function(js, timeout=timeout_ms)


def open_views(url: str, shots: Path, width: int = 1400) -> dict[str, dict]:
    """Opens each view (tab), waits until its charts draw, screenshots it; returns what each showed."""
    from playwright.sync_api import sync_playwright

    shots.mkdir(parents=True, exist_ok=True)
    seen: dict[str, dict] = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": 1000})
            page.goto(url, wait_until="networkidle")
            page.get_by_role("tab", name="Pareto front").wait_for(timeout=60_000)
            for view, (charts, text) in VIEWS.items():
                page.get_by_role("tab", name=view).click()
                panel = page.locator('[role="tabpanel"]:visible')
                wait_for_view(page, charts, text)
                page.wait_for_timeout(1000)  # Vega animates nothing, but fonts and legends settle
                name = view.lower().replace(" ", "-")
                page.screenshot(path=str(shots / f"{name}.png"), full_page=False)
                seen[view] = {
                    "charts": visible_charts(page),
                    "tables": panel.locator('[data-testid="stDataFrame"]').count(),
                    "text": panel.inner_text(),
                    "exceptions": page.locator('[data-testid="stException"]').count(),
                }
        finally:
            browser.close()
    return seen


if __name__ == "__main__":
    runs, out = Path(sys.argv[1]), Path(sys.argv[2])
    with running_app(runs, out / "app.log") as url:
        for view, got in open_views(url, out).items():
            print(view, {k: v for k, v in got.items() if k != "text"})
    os.remove(out / "app.log")
