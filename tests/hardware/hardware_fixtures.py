"""Fixtures of the hardware tests: a small Llama-shaped ModelShape (`shape`) and synthetic
measured profiles. Imported by the test modules: a conftest.py here would shadow the root
conftest that other test modules import by name."""

from __future__ import annotations

import pytest

from autoquant.hardware.base import RestCalibration
from autoquant.hardware.profile import HardwareProfile, shape_key
from autoquant.layers import LinearLayer
from autoquant.memory import ModelShape

BUCKETS = [1, 4, 16, 256]


def _layers() -> tuple[LinearLayer, ...]:
    out = []
    for b in range(2):
        p = f"model.layers.{b}"
        out += [
            LinearLayer(f"{p}.self_attn.q_proj", 256, 256, "q", b),
            LinearLayer(f"{p}.self_attn.k_proj", 64, 256, "k", b),
            LinearLayer(f"{p}.self_attn.v_proj", 64, 256, "v", b),
            LinearLayer(f"{p}.self_attn.o_proj", 256, 256, "o", b),
            LinearLayer(f"{p}.mlp.gate_proj", 512, 256, "gate", b),
            LinearLayer(f"{p}.mlp.up_proj", 512, 256, "up", b),
            LinearLayer(f"{p}.mlp.down_proj", 256, 512, "down", b),
        ]
    out.append(LinearLayer("lm_head", 1000, 256, "lm_head", None))
    return tuple(out)


@pytest.fixture
def shape() -> ModelShape:
    return ModelShape(_layers(), num_blocks=2, hidden_size=256, intermediate_size=512, num_kv_heads=2,
                      head_dim=32, vocab_size=1000, embedding_params=256_000, other_params=1280)


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
        rests={"graphs": RestCalibration(40e-6, 0.5, 6.0, 0.3, measured=True)} if rest_measured else {},
    )
