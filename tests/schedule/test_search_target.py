"""One schedule target's search task, called directly (no Ray): it asks the search library for
the engine its space implies, as `autoquant search` does."""

from __future__ import annotations

from transformers import LlamaConfig

from autoquant.schedule import parse_fleet
from autoquant.schedule.runner import search_target
from autoquant.schedule.targets import resolve_all


def test_a_fleet_on_the_llamacpp_space_searches_for_llamacpp(tmp_path) -> None:
    cfg = LlamaConfig(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2)
    cfg.save_pretrained(tmp_path / "tiny")  # shapes only: the budget below is refused before profiling
    fleet = parse_fleet({"models": [str(tmp_path / "tiny")], "hardware": ["l4"], "budgets": [{"memory": "1MB"}],
                         "space": "llamacpp", "trials": 5}, str(tmp_path / "fleet.yaml"), tmp_path)
    (rt,) = resolve_all(fleet)
    outcome = search_target(rt, fleet, {}, 1)
    # before, the search restricted the llamacpp space to vLLM's formats and failed on it
    assert outcome.error == ""
    assert not outcome.feasible and "smallest plan of space 'llamacpp' needs" in outcome.reason
