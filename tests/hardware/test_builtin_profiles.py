"""Measured profiles shipped with the package: found by GPU name and layer shapes, preferred over
the roofline where they cover the plan, replaced by a profile measured on newer software."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hardware_fixtures import make_profile, shape  # noqa: F401  (shape: a fixture)

from autoquant.cli import main
from autoquant.hardware import profile as profile_mod
from autoquant.hardware.latency import choose_profile, latency_model_for, plan_latency, profile_spec
from autoquant.hardware.profile import ProfileModel, builtin_profiles
from autoquant.hardware.roofline import RooflineModel
from autoquant.hardware.specs import BUILTIN_SPECS, get_spec
from autoquant.memory import ModelShape
from autoquant.models import resolve_model
from autoquant.plan import Plan

LLAMA_8B = str(Path(__file__).resolve().parents[2] / "bench" / "configs" / "llama-3-8b")


@pytest.fixture
def no_user_profiles(tmp_path, monkeypatch):
    monkeypatch.setattr(profile_mod, "CACHE_DIR", tmp_path)
    return tmp_path


def test_every_spec_says_where_its_figures_come_from() -> None:
    names = {s.name for s in BUILTIN_SPECS}
    assert {"a100", "h100", "h200", "b200", "l40s", "l4", "rtx4090", "rtx5090", "mi300x"} <= names
    assert all(s.source for s in BUILTIN_SPECS)


def test_the_h100_profile_ships_with_the_package() -> None:
    (path, prof), = [(p, pr) for p, pr in builtin_profiles() if profile_spec(pr) == get_spec("h100")]
    assert path.parent.name == "profiles" and prof.gpu["spec"] == "h100"


def test_built_in_profile_measures_llama_8b_on_h100(no_user_profiles, capsys) -> None:
    """The issue's example: 8.10 ms measured, not the roofline's 8.27 ms estimate."""
    assert main(["hardware", "latency", "--model", LLAMA_8B, "--hardware", "h100", "--plan", "int4-g128-asym",
                 "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["estimated"] is False and "profile" in d["source"]
    assert d["decode_s"] == pytest.approx(8.10e-3, abs=0.005e-3)


def test_built_in_h200_profile_serves_search_hardware_h200_per_runtime(no_user_profiles, capsys) -> None:
    """Issue 28: the H200 profile (both runtimes' rest measured) is found by name; graphs is measured,
    eager with quantized layers is labelled estimated (their Python launch cost is not profiled)."""
    got = {}
    for runtime, plan in (("graphs", "int4-g128-asym"), ("eager", "int4-g128-asym"), ("eager", "fp16")):
        assert main(["hardware", "latency", "--model", LLAMA_8B, "--hardware", "h200", "--plan", plan,
                     "--runtime", runtime, "--json"]) == 0
        got[runtime, plan] = json.loads(capsys.readouterr().out)
        assert "NVIDIA H200 profile" in got[runtime, plan]["source"] and got[runtime, plan]["runtime"] == runtime
    assert got["graphs", "int4-g128-asym"]["estimated"] is False and got["eager", "fp16"]["estimated"] is False
    assert got["eager", "int4-g128-asym"]["estimated"] is True
    assert got["eager", "int4-g128-asym"]["decode_s"] > 3 * got["graphs", "int4-g128-asym"]["decode_s"]


def test_a_model_the_profile_does_not_cover_gets_the_roofline(no_user_profiles, shape) -> None:
    assert isinstance(latency_model_for("h100", shape), RooflineModel)
    assert isinstance(latency_model_for("l4", ModelShape.from_source(resolve_model(LLAMA_8B))), RooflineModel)


def test_a_profile_on_a_newer_driver_replaces_the_built_in_one(no_user_profiles) -> None:
    llama = ModelShape.from_source(resolve_model(LLAMA_8B))
    (_, builtin), = [(p, pr) for p, pr in builtin_profiles() if profile_spec(pr) == get_spec("h100")]
    newer = make_profile(llama)
    newer.gpu["driver"] = "999.1"
    path = newer.save()
    model = latency_model_for("h100", llama)
    assert isinstance(model, ProfileModel) and model.source == str(path)
    assert choose_profile(lambda p: profile_spec(p) == get_spec("h100"))[2] == "user"
    older = make_profile(llama)
    older.gpu["driver"] = "400.1"
    path.unlink()
    older.save()
    assert choose_profile(lambda p: profile_spec(p) == get_spec("h100"), llama)[1].gpu == builtin.gpu
    lat = plan_latency(llama, Plan.uniform("int4-g128-asym", list(llama.layers)), latency_model_for("h100", llama))
    assert not lat.estimated


def test_hardware_list_shows_which_gpus_are_measured(no_user_profiles, capsys) -> None:
    assert main(["hardware", "list", "--json"]) == 0
    specs = {s["name"]: s for s in json.loads(capsys.readouterr().out)["specs"]}
    assert specs["h100"]["profile"].endswith("h100-llama-3-8b.json")
    assert specs["l4"]["profile"] is None and specs["mi300x"]["source"]
