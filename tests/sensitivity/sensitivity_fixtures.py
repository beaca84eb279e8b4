"""Fixtures of the sensitivity tests: tiny models with a byte-level tokenizer, so profiling
runs end to end in seconds. Imported by the test modules (a conftest.py here would shadow
the root conftest, which other test modules import by name)."""

from __future__ import annotations

import pytest
from tiny_models import save_byte_tokenizer, save_tiny_model  # noqa: F401  (re-exported)


@pytest.fixture(scope="session")
def tiny_source(tmp_path_factory):
    """A tiny untied Llama (2 blocks, 15 linear layers) as a local model directory."""
    return save_tiny_model(tmp_path_factory.mktemp("models") / "tiny-llama")


def our_workers() -> list:
    """ProfileWorker actor processes started by this test process (not anyone else's)."""
    import os

    import psutil

    out = []
    for p in psutil.Process(os.getpid()).children(recursive=True):
        try:
            if any("ProfileWorker" in part for part in p.cmdline()):
                out.append(p)
        except psutil.Error:
            continue
    return out


def profile_hitting_one_worker(tmp_path, hit):
    """Profile a 4-block tiny model (all pairs measured) on 2 Ray workers; once measuring has
    begun, `hit(worker_process)` one of them. Returns (table, {"pid", "done_before"}, total pairs)."""
    import threading
    import time

    from autoquant.data import calibration_text
    from autoquant.sensitivity import profile_sensitivity
    from autoquant.space import load_space, restrict_quantizers

    source = save_tiny_model(tmp_path / "tiny4", layers=4, hidden=128, seed=1)
    cache_dir = tmp_path / "sensitivity"
    hit_at: dict = {}

    def watch() -> None:
        deadline = time.time() + 240
        while time.time() < deadline:
            files = list(cache_dir.glob("*.jsonl"))
            text = files[0].read_text() if files else ""
            if text.count('"kind": "kl"') >= 3:  # measuring has begun
                victims = our_workers()
                if victims:
                    hit_at.update(pid=victims[0].pid, done_before=text.count('"kind": "kl"'))
                    hit(victims[0])
                    return
            time.sleep(0.01)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    # round-to-nearest only: recovery is what is tested, not the quantizers (tests/sensitivity/test_profile_ray.py)
    table = profile_sensitivity(source, restrict_quantizers(load_space(None), ["rtn"]), calibration_text(), calib_tokens=1024, measure="all",
                                measure_tokens=1024, workers=2, progress=False, cache_dir=cache_dir)
    thread.join(timeout=5)
    return table, hit_at, 4 * 7 * 3 + 1
