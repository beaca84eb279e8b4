from __future__ import annotations

import json

import pytest
from hardware_fixtures import BUCKETS, make_profile, shape  # noqa: F401  (shape: a fixture)

from autoquant.errors import UserError
from autoquant.formats import QuantFormat
from autoquant.hardware import profile as profile_mod
from autoquant.hardware.profile import HardwareProfile, ProfileModel, saved_profiles

INT4 = QuantFormat.parse("int4-g128-asym")


def test_round_trip(tmp_path, shape) -> None:
    prof = make_profile(shape)
    path = prof.save(tmp_path / "p.json")
    back = HardwareProfile.load(path)
    assert back.to_dict() == prof.to_dict()
    assert json.loads(path.read_text())["autoquant_hardware_profile_version"] == 1


def test_bad_files_are_user_errors(tmp_path, shape) -> None:
    with pytest.raises(UserError, match="not found"):
        HardwareProfile.load(tmp_path / "missing.json")
    d = make_profile(shape).to_dict()
    (tmp_path / "v.json").write_text(json.dumps(d | {"autoquant_hardware_profile_version": 99}))
    with pytest.raises(UserError, match="version"):
        HardwareProfile.load(tmp_path / "v.json")
    d["layers"]["256x256"]["int4-g128-asym"] = [1.0]
    (tmp_path / "b.json").write_text(json.dumps(d))
    with pytest.raises(UserError, match="not a valid"):
        HardwareProfile.load(tmp_path / "b.json")


def test_interpolation_between_and_beyond_buckets(shape) -> None:
    prof = make_profile(shape)
    times = prof.layers["256x256"][str(INT4)]
    m = ProfileModel(prof)
    assert m.layer_seconds(256, 256, INT4, 4) == pytest.approx(times[1]) and m.layer_time(256, 256, INT4, 4).measured
    mid = m.layer_seconds(256, 256, INT4, 10)
    assert times[1] < mid < times[2]
    assert m.layer_seconds(256, 256, INT4, 512) == pytest.approx(times[-1] * 512 / BUCKETS[-1])


def test_missing_shape_is_an_estimate_scaled_by_profiled_shapes(shape) -> None:
    m = ProfileModel(make_profile(shape))
    t = m.layer_time(2048, 2048, INT4, 1)
    assert not t.measured and t.seconds > m.layer_seconds(256, 256, INT4, 1)
    assert not m.layer_time(256, 256, QuantFormat.parse("int8-pc-sym"), 1).measured


def test_saved_profiles_live_in_the_cache_dir(tmp_path, monkeypatch, shape) -> None:
    monkeypatch.setattr(profile_mod, "CACHE_DIR", tmp_path)
    path = make_profile(shape).save()
    assert path.parent == tmp_path / "hardware"
    (tmp_path / "hardware" / "junk.json").write_text("{")
    found = saved_profiles()
    assert [p for p, _ in found] == [path]
