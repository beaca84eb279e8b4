"""Run naming (autoquant.runs): where every command writes a model's runs."""

from pathlib import Path

from autoquant.models import ModelSource
from autoquant.runs import model_slug, search_run_dir


def test_model_slug_names_run_directories() -> None:
    assert model_slug(ModelSource("x.gguf", "gguf", "/a", "SmolLM2.Q4_1.gguf")) == "SmolLM2.Q4_1"
    assert model_slug(ModelSource("org/name", "hub", "org/name")) == "org--name"
    assert model_slug(ModelSource("/m/my model", "dir", "/m/my model")) == "my-model"
    assert search_run_dir(ModelSource("org/name", "hub", "org/name"), "s", "r") == Path("r") / "org--name" / "s"
