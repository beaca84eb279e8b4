"""Tiny random models of four architectures, for fast tests (imported as `tiny_models`:
a uniquely named module, since `conftest` is ambiguous once subfolders have their own)."""

from __future__ import annotations

import torch


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
