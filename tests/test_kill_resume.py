"""kill -9 of `autoquant profile` and `autoquant search` at seeded random points, then re-runs:
nothing finished is lost or recomputed, the cache and the study stay readable, and
corrupt files are detected with one warning or error line, never a traceback.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time

import optuna
import pytest
from cli_processes import SEARCH_ARGS, Env, end_session
from optuna.trial import TrialState

from autoquant.search.storage import open_storage

pytestmark = pytest.mark.ray

# the tiny model's (layer, format, quantizer) entries in the default space (test_profile_ray.py): a
# resume that must measure gptq entries recomputes the calibration statistics they are quantized from
PAIRS = 86


def _cache_records(cache) -> tuple[list[tuple], int]:
    """Keys of every readable result line in the profile cache, and the unreadable lines (a torn last one)."""
    keys, bad = [], 0
    for path in (cache / "sensitivity").glob("*.jsonl"):
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                bad += 1
                continue
            if rec["kind"] not in ("key", "seconds"):  # "seconds": a layer's proxy time, one per quantizer
                keys.append((rec["kind"], rec["layer"], rec["format"], rec.get("quantizer"), rec.get("measure_tokens")))
    return keys, bad


def _kill_when(p, ready, timeout: float = 300) -> bool:
    """SIGKILL `p` once `ready()` holds; False if it finished first."""
    deadline = time.time() + timeout
    while time.time() < deadline and p.poll() is None:
        if ready():
            os.kill(p.pid, signal.SIGKILL)
            p.wait()
            return True
        time.sleep(0.05)
    return False


def test_kill_9_profile_at_random_points_resumes_without_recomputing(tmp_path):
    from cli_processes import make_env

    env: Env = make_env(tmp_path)
    rng = random.Random(27)
    args = ("profile", "--model", str(env.model), "--workers", "1", "--measure", "all", "--out", str(tmp_path / "run"),
            "--no-progress")
    # Kill points by progress, so they land mid-work whatever the machine's speed: while Ray starts
    # (no result yet), then after a random share of the results.
    targets = [0] + sorted(rng.sample(range(1, 2 * PAIRS), 3))
    seen: set = set()
    killed_mid_run = 0
    for target in targets:
        p = env.start(*args)
        try:
            if target == 0:
                killed = _kill_when(p, lambda: time.sleep(rng.uniform(1, 3)) or True)
            else:
                killed = _kill_when(p, lambda t=target: len(_cache_records(env.cache)[0]) >= t)
        finally:
            end_session(p)
        keys, bad = _cache_records(env.cache)
        assert len(keys) == len(set(keys)), "a finished result was computed twice"
        assert bad <= 1  # at most the line a kill cut short
        assert seen <= set(keys), "a finished result was lost"
        seen = set(keys)
        killed_mid_run += killed and 0 < len(keys) < 2 * PAIRS
    assert killed_mid_run >= 2, "the kills did not land mid-profile: the test exercised nothing"

    r = env.run(*args, timeout=600)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-3000:]
    keys, _ = _cache_records(env.cache)
    assert len(keys) == len(set(keys)) and seen <= set(keys)
    table = json.loads((tmp_path / "run" / "sensitivity.json").read_text())
    assert len(table["entries"]) == PAIRS
    # A torn line from a kill is reported in one warning line, then skipped.
    warnings = [l for l in r.stderr.splitlines() if "warning" in l]
    assert len(warnings) <= 1


def _search_trials(storage: str, study: str) -> list[str]:
    try:
        s = optuna.load_study(study_name=study, storage=open_storage(storage))
    except KeyError:  # killed before the study was created
        return []
    return [t.user_attrs["uid"] for t in s.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.user_attrs.get("kind") == "search"]


def test_kill_9_search_at_random_points_resumes(profiled_env, tmp_path):
    env = profiled_env
    rng = random.Random(27)
    storage, study = f"sqlite:///{tmp_path / 'study.db'}", "killed"
    own = ("--storage", storage, "--study", study, "--trials", "400", "--runs-dir", str(tmp_path / "runs"))
    args = ("search", "--model", str(env.model), *SEARCH_ARGS, "--json", *own)
    t = time.perf_counter()
    first = env.run(*args)
    full = time.perf_counter() - t
    assert first.returncode == 0, first.stderr[-3000:]
    stored = set(_search_trials(storage, study))
    for _ in range(3):
        p = env.start(*args)
        try:
            _kill_when(p, lambda at=time.time() + rng.uniform(0.3, 1.0) * full: time.time() >= at)
        finally:
            end_session(p)
        uids = _search_trials(storage, study)
        assert len(uids) == len(set(uids)), "a trial was stored twice"
        assert stored <= set(uids), "a finished trial was lost"
        stored = set(uids)
        front = tmp_path / "runs" / "tiny-llama" / study / "front.json"
        json.loads(front.read_text())  # the old file or the new one, never half of one

    result = env.search(*own)
    assert result["study"]["trials"] == len(stored) + 400  # its seeds, if any, count among the 400
    assert result["study"]["seeded"] == 0  # seeded once, by the first run


def test_corrupt_files_are_one_line_not_a_traceback(profiled_env, tmp_path):
    env = profiled_env
    # A corrupt study database: one error line naming it.
    db = tmp_path / "study.db"
    db.write_bytes(b"this is not a database" * 100)
    r = env.run("search", "--model", str(env.model), *SEARCH_ARGS, "--storage", f"sqlite:///{db}",
                "--runs-dir", str(tmp_path / "runs"))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and str(db) in r.stderr

    # A truncated plan file: one error line.
    plan = tmp_path / "plan.json"
    plan.write_text('{"format": "autoquant-plan", "layers": {"model.layers.0')
    r = env.run("export", "--plan", str(plan), "--model", str(env.model), "--out", str(tmp_path / "export"))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "plan.json" in r.stderr

    # A truncated front.json from an older run is replaced by the next run.
    runs = tmp_path / "runs2"
    front = runs / "tiny-llama" / "c" / "front.json"
    front.parent.mkdir(parents=True)
    front.write_text('{"front": [')
    env.search("--study", "c", "--trials", "20", "--runs-dir", str(runs))
    assert "front" in json.loads(front.read_text())

    # A corrupt line in the middle of the profile cache: one warning line, the result recomputed.
    cache = env.cache / "sensitivity"
    (path,) = cache.glob("*.jsonl")
    original = path.read_text()
    lines = original.splitlines(keepends=True)
    try:
        path.write_text("".join(lines[:5]) + "{garbage\n" + "".join(lines[6:]))
        r = env.run("profile", "--model", str(env.model), "--workers", "1", "--out", str(tmp_path / "p"),
                    "--no-progress", timeout=600)
        assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-3000:]
        warnings = [l for l in r.stderr.splitlines() if "warning" in l]
        assert len(warnings) == 1 and "skipped 1 unreadable line" in warnings[0]
    finally:
        path.write_text(original)
