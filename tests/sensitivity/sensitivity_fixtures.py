"""Fixtures of the sensitivity tests: tiny models with a byte-level tokenizer, so profiling
runs end to end in seconds. Imported by the test modules (a conftest.py here would shadow
the root conftest, which other test modules import by name)."""

from __future__ import annotations

import pytest
import torch


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


@pytest.fixture(scope="session")
def tiny_source(tmp_path_factory):
    """A tiny untied Llama (2 blocks, 15 linear layers) as a local model directory."""
    return save_tiny_model(tmp_path_factory.mktemp("models") / "tiny-llama")
