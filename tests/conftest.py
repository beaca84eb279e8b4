"""Shared fixtures: tiny random models of four architectures, and the real SmolLM2."""

from __future__ import annotations

import os

import pytest
import torch

# Tests must never reach the network (the hub id tests expect a fast, offline failure).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(min(2, os.cpu_count() or 1))


def tiny_config(arch: str):
    from transformers import GPT2Config, LlamaConfig, MistralConfig, Qwen2Config

    common = dict(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)
    if arch == "llama":
        return LlamaConfig(**common, tie_word_embeddings=False)
    if arch == "qwen2":
        return Qwen2Config(**common, tie_word_embeddings=True)
    if arch == "mistral":
        return MistralConfig(**common, sliding_window=None)
    if arch == "gpt2":
        return GPT2Config(vocab_size=256, n_embd=64, n_layer=2, n_head=4, n_positions=128)
    raise ValueError(arch)


ARCHS = ("llama", "qwen2", "mistral", "gpt2")


def tiny_model(arch: str, seed: int = 0):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(tiny_config(arch)).eval()


@pytest.fixture(params=ARCHS)
def arch(request) -> str:
    return request.param


@pytest.fixture
def tiny_model_dir(tmp_path):
    """A local model directory (config + safetensors + no tokenizer) of a tiny Llama."""
    model = tiny_model("llama")
    model.save_pretrained(tmp_path / "tiny-llama")
    return tmp_path / "tiny-llama"


@pytest.fixture(scope="session")
def smollm2():
    """The embedded SmolLM2-135M-Instruct: (source, model, tokenizer). Converted once per cache."""
    from autoquant.models import load_model, load_tokenizer, resolve_model

    source = resolve_model(None)
    return source, load_model(source), load_tokenizer(source)
