"""Fixtures of the sensitivity tests: tiny models with a byte-level tokenizer, so profiling
runs end to end in seconds. Imported by the test modules (a conftest.py here would shadow
the root conftest, which other test modules import by name)."""

from __future__ import annotations

import pytest
from tiny_models import save_byte_tokenizer, save_tiny_model  # noqa: F401  (re-exported)


@pytest.fixture(scope="session")
def tiny_source(tmp_path_factory):
    """A tiny untied Llama (2 blocks, 15 linear layers) as a local model directory."""
    return save_tiny_model(tmp_path_factory.mktemp("models") / "tiny-llama")
