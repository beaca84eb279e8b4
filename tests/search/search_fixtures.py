"""Search problems for tests: tiny or SmolLM2-shaped models (meta device) with synthetic tables."""

from __future__ import annotations

import numpy as np

from autoquant.formats import QuantFormat
from autoquant.hardware import latency_model_for
from autoquant.memory import ModelShape
from autoquant.models import build_meta_model
from autoquant.search.objectives import SearchProblem
from autoquant.space import SearchSpace, load_space, parse_space

# Relative damage of each format, roughly as measured on SmolLM2 (int4-g128-asym = 1).
FORMAT_FACTOR = {"int8-pc-sym": 0.007, "int4-g32-asym": 0.45, "int4-g64-asym": 0.7, "int4-g128-asym": 1.0,
                 "int4-g128-sym": 1.3, "int4-pc-sym": 3.0}


# Relative damage of each quantizer (rtn = 1), roughly as measured on SmolLM2's int4.
QUANTIZER_FACTOR = {"rtn": 1.0, "gptq": 0.4, "awq": 0.65}


class SyntheticTable:
    """estimated_kl = layer sensitivity (log-normal, like real tables) x format factor x quantizer factor."""

    def __init__(self, layers, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.sensitivity = {l.name: float(np.exp(rng.normal(-6.0, 1.2))) for l in layers}

    def estimated_kl(self, layer: str, fmt: QuantFormat | str, quantizer: str = "rtn") -> float:
        f = str(fmt)
        return 0.0 if f in ("fp16", "bf16") else self.sensitivity[layer] * FORMAT_FACTOR[f] * QUANTIZER_FACTOR[quantizer]

    def best_quantizer(self, layer: str, fmt: QuantFormat | str, allowed) -> tuple[str, float]:
        return min(((q, self.estimated_kl(layer, fmt, q)) for q in ("rtn", *allowed)), key=lambda qk: qk[1])


def tiny_shape(tied: bool = True) -> ModelShape:
    """The tiny Llama of the other tests (2 blocks, hidden 64), shapes only."""
    from transformers import LlamaConfig

    cfg = LlamaConfig(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=tied)
    return ModelShape.from_model(build_meta_model(cfg))


def smollm2_shape() -> ModelShape:
    """SmolLM2-135M's architecture from its dimensions alone: no download, no weights."""
    from transformers import LlamaConfig

    cfg = LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                      num_attention_heads=9, num_key_value_heads=3, tie_word_embeddings=True)
    return ModelShape.from_model(build_meta_model(cfg))


SMALL_SPACE = {
    "name": "small",
    "formats": {"default": ["fp16", "int8-pc-sym", "int4-g128-asym"]},
    "tie": [["q", "k", "v"], ["gate", "up"]],
    "lm_head": {"formats": ["fp16", "int8-pc-sym"], "tied": "search"},
}


def problem(shape: ModelShape, space: SearchSpace | None = None, *, latency: bool = True, seed: int = 0,
            batch: int = 1, context: int = 256) -> SearchProblem:
    space = space or parse_space(SMALL_SPACE)
    model = latency_model_for("h100") if latency else None
    return SearchProblem.build(shape, space, SyntheticTable(shape.layers, seed), model, batch=batch,
                               context=context, model_name="test")


def default_space() -> SearchSpace:
    return load_space(None)
