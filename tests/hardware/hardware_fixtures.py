"""Synthetic measured profiles for the hardware tests."""

from __future__ import annotations

from autoquant.hardware.base import RestCalibration
from autoquant.hardware.profile import HardwareProfile, shape_key
from autoquant.memory import ModelShape

BUCKETS = [1, 4, 16, 256]


def make_profile(shape: ModelShape, formats=("fp16", "int4-g128-asym"), rest_measured: bool = True) -> HardwareProfile:
    """Times proportional to weight bytes at 1 token, growing linearly with tokens."""
    from autoquant.formats import QuantFormat

    layers = {}
    for l in shape.layers:
        per = layers.setdefault(shape_key(l.out_features, l.in_features), {})
        for f in formats:
            base = QuantFormat.parse(f).storage_bytes(l.out_features, l.in_features) / 2e12 + 3e-6
            per[f] = [base * (1 + t / 64) for t in BUCKETS]
    return HardwareProfile(
        gpu={"name": "NVIDIA H100 80GB HBM3", "spec": "h100", "memory_bytes": 80 * 10**9},
        created="2026-11-20T10:00:00+00:00", model="tiny", bandwidth=3.0e12, fp16_flops=7.0e14,
        buckets=list(BUCKETS), layers=layers,
        rest=RestCalibration(40e-6, 0.5, 6.0, 0.3, measured=rest_measured),
    )
