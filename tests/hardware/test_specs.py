from __future__ import annotations

import pytest

from autoquant.errors import UserError
from autoquant.hardware.specs import BUILTIN_SPECS, get_spec, match_spec


def test_required_gpus_are_built_in() -> None:
    names = {s.name for s in BUILTIN_SPECS}
    assert {"h100", "h200", "a100", "l4", "l40s", "rtx4090", "b200"} <= names
    for s in BUILTIN_SPECS:
        assert s.bandwidth > 1e11 and s.fp16_flops > 1e13 and s.memory_bytes > 1e10


def test_names_are_case_insensitive_with_aliases() -> None:
    assert get_spec("H100").name == "h100"
    assert get_spec("A100").name == "a100"
    assert get_spec("RTX 4090").name == "rtx4090"


def test_unknown_name_lists_known_ones() -> None:
    with pytest.raises(UserError, match="h100.*l4"):
        get_spec("tpu-v5")


@pytest.mark.parametrize("device,name", [
    ("NVIDIA H100 80GB HBM3", "h100"), ("NVIDIA H100 PCIe", "h100-pcie"), ("NVIDIA H200", "h200"),
    ("NVIDIA A100-SXM4-80GB", "a100"), ("NVIDIA A100-SXM4-40GB", "a100-40gb"), ("NVIDIA L4", "l4"),
    ("NVIDIA L40S", "l40s"), ("NVIDIA GeForce RTX 4090", "rtx4090"), ("NVIDIA B200", "b200"),
])
def test_device_names_match_specs(device: str, name: str) -> None:
    assert match_spec(device).name == name


def test_unknown_device_matches_nothing() -> None:
    assert match_spec("NVIDIA GeForce GTX 1080") is None
