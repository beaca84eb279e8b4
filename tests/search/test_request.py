"""A search request's defaults, applied in the library so the CLI, the schedule and the app agree."""

from __future__ import annotations

import pytest

from autoquant.costs import Budgets
from autoquant.engines import get_engine, restrict_space
from autoquant.search import SearchRequest
from autoquant.space import load_space


@pytest.mark.parametrize(("space", "engine"), [(None, "vllm"), ("default", "vllm"), ("aggressive", "vllm"),
                                                ("llamacpp", "llamacpp")])
def test_the_engine_follows_the_space_when_none_is_named(space, engine) -> None:
    req = SearchRequest(budgets=Budgets(10**9), space=space)
    assert req.engine == engine
    # the space keeps a choice for every role under that engine, and keeps its own name
    assert restrict_space(load_space(space), get_engine(req.engine)).name == load_space(space).name


def test_a_space_of_your_own_with_gguf_formats_defaults_to_llamacpp(tmp_path) -> None:
    mine = tmp_path / "mine.yaml"
    mine.write_text("name: mine\nformats:\n  default: [fp16, q8_0, q4_0]\n")
    assert SearchRequest(budgets=Budgets(10**9), space=str(mine)).engine == "llamacpp"
    mixed = tmp_path / "mixed.yaml"  # int formats too: vLLM serves those, and stays the default
    mixed.write_text("name: mixed\nformats:\n  default: [fp16, q8_0, int4-g128-asym]\n")
    assert SearchRequest(budgets=Budgets(10**9), space=str(mixed)).engine == "vllm"


def test_a_named_engine_is_kept() -> None:
    req = SearchRequest(budgets=Budgets(10**9), space="llamacpp", engine="autoquant")
    assert req.engine == "autoquant"
    assert restrict_space(load_space("default"), get_engine("transformers")).name == "default+transformers"
