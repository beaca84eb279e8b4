"""Shared fixtures: tiny random models of four architectures, and the real SmolLM2."""

from __future__ import annotations

import os

import pytest
import torch

# Kernel tests run the real Triton kernels; without a GPU, under the Triton interpreter. It must
# be switched on before anything imports `kernels` (a jit function is bound at import), and
# other test modules import it through autoquant.apply/export, so it is set here, first.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

# Tests must never reach the network (the hub id tests expect a fast, offline failure).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(min(2, os.cpu_count() or 1))


from tiny_models import ARCHS, tiny_config, tiny_model  # noqa: E402,F401


def pytest_collection_modifyitems(config, items) -> None:
    """`-m gpu` selects the tests that need a CUDA GPU; without one they are skipped, not failed."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (marked gpu)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


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


# A tiny model with its profile cached, shared by the failure and load tests (one profile a session).
from cli_processes import profiled_env  # noqa: E402,F401
