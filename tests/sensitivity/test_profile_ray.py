"""End to end on a local Ray instance: every entry, cache hits, resume, a killed worker."""

from __future__ import annotations

import os
import shutil
import signal
import time

import psutil
import pytest

from autoquant import models
from autoquant.cli import main
from autoquant.data import calibration_text
from autoquant.sensitivity import SensitivityTable, profile_sensitivity
from autoquant.space import load_space
from sensitivity_fixtures import profile_hitting_one_worker, tiny_source  # noqa: F401  (tiny_source: a fixture)

pytestmark = pytest.mark.ray

ARGS = dict(calib_tokens=1024, measure="all", measure_tokens=512, workers=2, progress=False)


@pytest.fixture(scope="module")
def profiled(tiny_source, tmp_path_factory):
    root = tmp_path_factory.mktemp("aq-cache")
    table = profile_sensitivity(tiny_source, load_space(None), calibration_text(), cache_dir=root / "sensitivity", **ARGS)
    return table, root


def _cache_file(root):
    (path,) = (root / "sensitivity").glob("*.jsonl")
    return path


def test_every_pair_profiled_and_measured(profiled):
    table, _ = profiled
    # 2 blocks x 7 layers x 3 default formats x the default quantizers (rtn, gptq), + the untied
    # lm_head in int8 (the space's lm_head rule) by both
    assert len(table.layers) == 15 and len(table.entries) == 2 * 7 * 3 * 2 + 2
    assert set(table.formats) == {"int8-pc-sym", "int4-g64-asym", "int4-g128-asym"}
    assert table.quantizers == ["rtn", "gptq"]
    assert all(e.measured and e.proxy > 0 for e in table.entries.values())
    # gptq's proxy is computed on the statistics it was fitted to, its KL measured on held-out
    # tokens (test_worker.py): it gets a scale of its own
    assert set(table.proxy_to_kl_by_quantizer) == {"gptq"} and table.proxy_to_kl_by_quantizer["gptq"] > 0
    # gptq minimises the output error the proxy weighs: over the int4 entries it is well below rtn's,
    # and the measured KL agrees
    int4 = [e for e in table.entries.values() if e.format.startswith("int4") and e.quantizer == "rtn"]
    for attr in ("proxy", "kl"):
        rtn = sum(getattr(e, attr) for e in int4)
        gptq = sum(getattr(table.entries[(e.layer, e.format, "gptq")], attr) for e in int4)
        assert gptq < 0.8 * rtn, (attr, gptq, rtn)
    assert set(table.quantizer_seconds) == {"rtn", "gptq"} and all(s > 0 for s in table.quantizer_seconds.values())
    assert table.calibrated and table.proxy_to_kl > 0
    assert table.spearman is not None and table.spearman > 0.5  # the proxy ranks even a random model
    assert "2 worker" in table.executor


def test_rerun_is_served_from_the_cache(profiled, tiny_source):
    import ray

    table, root = profiled
    t = time.perf_counter()
    again = profile_sensitivity(tiny_source, load_space(None), calibration_text(), cache_dir=root / "sensitivity", **ARGS)
    assert time.perf_counter() - t < 10
    assert again.executor == "" and not ray.is_initialized()  # no Ray started at all
    assert again.entries == table.entries


def test_interrupted_profile_resumes(profiled, tiny_source, tmp_path):
    table, root = profiled
    lines = _cache_file(root).read_text().splitlines(keepends=True)
    (tmp_path / "sensitivity").mkdir()
    partial = tmp_path / "sensitivity" / _cache_file(root).name
    partial.write_text("".join(lines[:-20]) + lines[-20][:30])  # the run died mid-write, 20 results short
    resumed = profile_sensitivity(tiny_source, load_space(None), calibration_text(), cache_dir=tmp_path / "sensitivity", **ARGS)
    assert resumed.executor  # work was done ...
    assert set(resumed.entries) == set(table.entries)
    for key, e in table.entries.items():  # ... and it matches what the uninterrupted run found
        r = resumed.entries[key]
        assert r.proxy == pytest.approx(e.proxy, rel=1e-3) and r.kl == pytest.approx(e.kl, rel=1e-3, abs=1e-7)
    # only the missing results were computed: the lost 20 lines (proxies come a layer at a time)
    added = len(partial.read_text().splitlines()) - len(lines[:-20]) - 1
    assert 20 <= added <= 22


def test_killed_worker_costs_only_its_task(tmp_path):
    table, killed, total = profile_hitting_one_worker(tmp_path, lambda w: os.kill(w.pid, signal.SIGKILL))
    assert "pid" in killed, "no worker was killed: the test did not exercise recovery"
    assert killed["done_before"] < total  # killed mid-run
    assert len(table.entries) == total and all(e.measured for e in table.entries.values())
    assert not psutil.pid_exists(killed["pid"]) or psutil.Process(killed["pid"]).status() == psutil.STATUS_ZOMBIE


def test_cli_profile_and_show(profiled, tiny_source, tmp_path, monkeypatch, capsys):
    _, root = profiled
    monkeypatch.setattr(models, "CACHE_DIR", root)  # the fixture's cache: served without Ray
    out = tmp_path / "run"
    code = main(["profile", "--model", tiny_source.path, "--calib-tokens", "1024", "--measure", "all",
                 "--workers", "2", "--out", str(out), "--no-progress"])
    assert code == 0
    assert (out / "sensitivity.json").exists() and (out / "sensitivity.png").stat().st_size > 10_000
    printed = capsys.readouterr().out
    assert "most sensitive" in printed and "Spearman" in printed

    assert main(["profile", "show", str(out), "--top", "3", "--json"]) == 0
    import json

    shown = json.loads(capsys.readouterr().out)
    assert len(shown["most_sensitive"]) == 3 and shown["measured_pairs"] == 86
    assert "int4-g128-asym (gptq)" in shown["most_sensitive"][0]["estimated_kl"]
    assert shown["spearman"] == SensitivityTable.load(out / "sensitivity.json").spearman


def test_cli_errors_are_one_line(tiny_source, tmp_path, capsys):
    assert main(["profile", "--measure", "bogus", "--model", tiny_source.path, "--out", str(tmp_path)]) == 2
    assert "--measure must be one of auto, all, sample, none" in capsys.readouterr().err
    # the library names its parameter (normalisation); the CLI says the flag the user typed
    assert main(["profile", "--proxy", "bogus", "--model", tiny_source.path, "--out", str(tmp_path)]) == 2
    assert "--proxy must be one of" in capsys.readouterr().err
    assert main(["profile", "--workers", "0", "--model", tiny_source.path, "--out", str(tmp_path)]) == 2
    assert main(["profile", "show", str(tmp_path / "nothing.json")]) == 2
    err = capsys.readouterr().err
    assert "not found" in err and "Traceback" not in err and len(err.strip().splitlines()) == 2


def test_cli_defaults_are_the_library_defaults():
    import inspect

    from autoquant.cli.profile import profile
    from autoquant.sensitivity import profile as lib

    cli = {name: p.default.default if hasattr(p.default, "default") else p.default
           for name, p in inspect.signature(profile).parameters.items()}
    # None: 1024 tokens, or 8192 for a space with gptq/awq (the library decides, from the space)
    assert cli["calib_tokens"] is None and inspect.signature(lib.profile_sensitivity).parameters["calib_tokens"].default is None
    assert cli["measure_tokens"] == lib.DEFAULT_MEASURE_TOKENS
    assert cli["sample"] == lib.DEFAULT_SAMPLE
    assert cli["measure"] == "auto" and cli["proxy"] == lib.DEFAULT_NORMALISATION


def test_measure_none_keeps_the_uncalibrated_prior(tiny_source, tmp_path, profiled):
    _, root = profiled
    cache = tmp_path / "sensitivity"
    shutil.copytree(root / "sensitivity", cache)
    path = next(cache.glob("*.jsonl"))  # keep the proxies, drop the measurements
    path.write_text("".join(l + "\n" for l in path.read_text().splitlines() if '"kind": "kl"' not in l))
    table = profile_sensitivity(tiny_source, load_space(None), calibration_text(), cache_dir=cache,
                                **(ARGS | {"measure": "none"}))
    assert table.executor == ""  # proxies cached, nothing to measure: no Ray
    assert not table.calibrated and table.proxy_to_kl == 1.0 and table.spearman is None
    assert all(e.kl is None for e in table.entries.values())
    assert any("uncalibrated" in n for n in table.notes)
    e = next(iter(table.entries.values()))
    assert table.estimated_kl(e.layer, e.format) == e.proxy


def test_statistics_ship_one_input_at_a_time(tiny_source, tmp_path, monkeypatch):
    """Each Ray object holds one layer input's X^T X (an 8B model's total, ~33 GB, stalled ray.put)."""
    from autoquant.sensitivity.executor import RayExecutor
    from autoquant.sensitivity.statistics import LayerStatistics

    shipped: list[LayerStatistics] = []
    original = RayExecutor.put

    def put(self, value):
        shipped.append(value)
        return original(self, value)

    monkeypatch.setattr(RayExecutor, "put", put)
    table = profile_sensitivity(tiny_source, load_space(None), calibration_text(), cache_dir=tmp_path / "s",
                                **{**ARGS, "measure": "none", "workers": 1})
    stats = [v for v in shipped if isinstance(v, LayerStatistics)]
    assert stats and all(len(s.input_sums) == 1 for s in stats)
    covered = {name for s in stats for name in s.input_of}
    assert covered == set(table.layers)
    # q/k/v (and gate/up) read one tensor: one object for the three, not three copies
    assert len(stats) < len(covered)
