"""Shared fixture: a small Llama-shaped ModelShape (profiles: hardware_fixtures.py)."""

from __future__ import annotations

import pytest

from autoquant.layers import LinearLayer
from autoquant.memory import ModelShape


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
