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


def save_byte_tokenizer(path) -> None:
    """A 256-token byte-level tokenizer (no merges): any text, offline, vocab = tiny models'."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {ch: i for i, ch in enumerate(pre_tokenizers.ByteLevel.alphabet())}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    PreTrainedTokenizerFast(tokenizer_object=tok).save_pretrained(path)


def save_tiny_model(path, *, layers: int = 2, hidden: int = 64, tied: bool = False, seed: int = 0):
    from transformers import AutoModelForCausalLM, LlamaConfig

    from autoquant.models import resolve_model

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=256, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         tie_word_embeddings=tied)
    AutoModelForCausalLM.from_config(config).save_pretrained(path)
    save_byte_tokenizer(path)
    return resolve_model(str(path))
