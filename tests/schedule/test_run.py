"""`schedule run` end to end on a tiny model (Ray, local): the issue's check in small.

A first run searches every target; a second changes nothing and starts no search; a GPU added
to the spec makes only its targets run, through the exact command the installed crontab entry
holds, and CHANGES.md says so; `schedule status` is right after each step, and a profile measured
on a newer driver makes the targets of that GPU stale.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
import yaml
from tiny_models import save_tiny_model

from autoquant.cli import main
from autoquant.hardware import profile as profile_mod
from autoquant.hardware.profile import HardwareProfile, shape_key
from autoquant.memory import ModelShape
from autoquant.models import resolve_model
from autoquant.schedule import load_fleet, read_catalog, run_schedule, target_status
from autoquant.schedule.install import MARKER, read_crontab

pytestmark = pytest.mark.ray

CRON_TEST_MARKER = "autoquant-test-schedule"  # in the spec's file name: the test touches only its own line


@pytest.fixture(scope="module")
def fleet_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp(CRON_TEST_MARKER)
    model = save_tiny_model(root / "tiny")
    spec = {"models": [model.path], "hardware": ["h100", "l4"], "workloads": [{"batch": 1, "context": 256}],
            "budgets": [{"memory": "90%"}, {"memory": "1MB"}], "trials": 20, "eval_tokens": 256, "measure": 2}
    (root / f"{CRON_TEST_MARKER}.yaml").write_text(yaml.safe_dump(spec))
    return root


def _states(spec, catalog) -> dict[str, str]:
    return {s.id: s.state for s in target_status(load_fleet(spec), read_catalog(catalog))}


def test_first_run_searches_all_then_a_rerun_is_a_no_op(fleet_dir) -> None:
    spec, catalog = fleet_dir / f"{CRON_TEST_MARKER}.yaml", fleet_dir / "catalog"
    assert set(_states(spec, catalog).values()) == {"new"}
    first = run_schedule(load_fleet(spec), catalog)
    assert len(first.outcomes) == 4 and not first.failed
    cat = read_catalog(catalog)
    assert len(cat.targets) == 4
    ok = [e for e in cat.targets.values() if e.feasible]
    assert len(ok) == 2 and all((catalog / e.plan).is_file() and (catalog / e.front).is_file() for e in ok)
    assert all(e.latency.estimated and e.quality.kl >= 0 for e in ok)
    assert {e.budgets["memory"] for e in ok} == {int(0.9 * 80e9), int(0.9 * 24e9)}  # 90% of each GPU
    assert all("no plan fits" in e.reason for e in cat.targets.values() if not e.feasible)
    assert set(_states(spec, catalog).values()) == {"current"}

    second = run_schedule(load_fleet(spec), catalog)
    assert second.outcomes == [] and read_catalog(catalog).targets == cat.targets
    assert "Nothing was stale" in (catalog / "CHANGES.md").read_text().split("\n## ")[-1]


def test_installed_cron_command_searches_only_the_new_gpu(fleet_dir, capsys) -> None:
    if shutil.which("crontab") is None:
        pytest.fail("cron is not installed: .ci/run installs it (apt-get install cron)")
    spec, catalog = fleet_dir / f"{CRON_TEST_MARKER}.yaml", fleet_dir / "catalog"
    doc = yaml.safe_load(spec.read_text())
    doc["hardware"].append("rtx4090")
    spec.write_text(yaml.safe_dump(doc))
    states = _states(spec, catalog)
    assert sorted(k for k, v in states.items() if v == "new") == sorted(k for k in states if "/rtx4090/" in k)
    assert list(states.values()).count("current") == 4

    before = read_crontab()
    try:
        assert main(["schedule", "install", str(spec), "--cron", "17 4 * * 1", "--catalog", str(catalog)]) == 0
        ours = [l for l in read_crontab() if l.endswith(f"{MARKER}{spec}")]
        assert len(ours) == 1 and read_crontab()[:-1] == [l for l in before if not l.endswith(f"{MARKER}{spec}")]
        fields = ours[0].split(None, 5)
        assert fields[:5] == ["17", "4", "*", "*", "1"]
        command = fields[5].rsplit(" # ", 1)[0]  # the marker is a comment; cron runs the rest with sh
        done = subprocess.run(["/bin/sh", "-c", command], cwd="/", timeout=600)
        assert done.returncode == 0, (catalog / "schedule.log").read_text()[-2000:]
    finally:
        main(["schedule", "install", str(spec), "--remove"])
        assert read_crontab() == before
        capsys.readouterr()
    cat = read_catalog(catalog)
    assert len(cat.targets) == 6 and set(_states(spec, catalog).values()) == {"current"}
    last = (catalog / "CHANGES.md").read_text().split("\n## ")[-1]
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC: 2 searched, 4 current", last)
    new_lines = [l for l in last.splitlines() if l.startswith("- `")]
    assert len(new_lines) == 2 and all("/rtx4090/" in l for l in new_lines)
    assert "### New targets" in last


def test_a_profile_on_a_newer_driver_makes_that_gpus_targets_stale(fleet_dir, tmp_path, monkeypatch, capsys) -> None:
    spec, catalog = fleet_dir / f"{CRON_TEST_MARKER}.yaml", fleet_dir / "catalog"
    monkeypatch.setattr(profile_mod, "CACHE_DIR", tmp_path)
    shape = ModelShape.from_source(resolve_model(load_fleet(spec).models[0]))
    layers = {shape_key(l.out_features, l.in_features): {"fp16": [1e-5, 2e-5]} for l in shape.layers}
    HardwareProfile(gpu={"name": "NVIDIA H100 80GB HBM3", "spec": "h100", "driver": "999.0"},
                    created="2027-01-01T00:00:00+00:00", model="tiny", bandwidth=3e12, fp16_flops=9e14,
                    buckets=[1, 256], layers=layers).save()
    states = _states(spec, catalog)
    assert sorted(k for k, v in states.items() if v == "stale") == sorted(k for k in states if "/h100/" in k)
    assert main(["schedule", "status", str(spec), "--catalog", str(catalog), "--json"]) == 0
    rows = {r["id"]: r for r in json.loads(capsys.readouterr().out)["targets"]}
    h100 = [r for k, r in rows.items() if "/h100/" in k]
    assert all("hardware changed" in r["reasons"][0] and "driver 999.0" in r["reasons"][0] for r in h100)
