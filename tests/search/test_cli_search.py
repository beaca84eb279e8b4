"""`autoquant search` at the edge: clear one-line errors and their exit codes, before any profiling.

A config-only model directory is enough: every check here runs on shapes alone.
"""

from __future__ import annotations

import pytest
from transformers import LlamaConfig

from autoquant.cli import main


@pytest.fixture
def config_only(tmp_path) -> str:
    cfg = LlamaConfig(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True)
    cfg.save_pretrained(tmp_path / "tiny")
    return str(tmp_path / "tiny")


def _run(args: list[str], capsys) -> tuple[int, str]:
    code = main(["search", "--no-progress", "--runs-dir", "unused", *args])
    return code, capsys.readouterr().err


def test_budget_nothing_fits_exits_3_naming_the_smallest_memory(config_only, capsys) -> None:
    code, err = _run(["--model", config_only, "--budget", "1MB"], capsys)
    assert code == 3
    assert "no plan fits 1.00 MB" in err and "smallest plan of space 'default' needs" in err
    assert "raise --budget, or lower --batch / --context" in err  # the library's parameters, as flags
    assert len(err.strip().splitlines()) == 1


def test_latency_budget_nothing_fits_exits_3_naming_the_fastest(config_only, capsys) -> None:
    code, err = _run(["--model", config_only, "--budget", "24GB", "--latency-budget", "1ns"], capsys)
    assert code == 3
    assert "fastest plan" in err and "estimated" in err
    assert "raise --latency-budget or lower --batch / --context" in err


def test_malformed_space_exits_2(config_only, tmp_path, capsys) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nformats:\n  default: [fp16, int3-g128]\n")
    code, err = _run(["--model", config_only, "--budget", "24GB", "--space", str(bad)], capsys)
    assert code == 2
    assert f"search space {bad}: formats.default" in err


def test_unknown_hardware_exits_2(config_only, capsys) -> None:
    code, err = _run(["--model", config_only, "--budget", "24GB", "--hardware", "voodoo5"], capsys)
    assert code == 2
    assert "voodoo5" in err


@pytest.mark.parametrize(
    ("args", "needle"),
    [(["--budget", "lots"], "invalid --budget"),
     (["--budget", "24GB", "--quality-budget", "ppl=3"], "percentage"),
     (["--budget", "24GB", "--latency-budget", "fast"], "invalid --latency-budget"),
     (["--budget", "24GB", "--batch", "0"], "--batch"),
     (["--budget", "24GB", "--sampler", "grid"], "unknown sampler")],
)
def test_bad_flags_exit_2(config_only, capsys, args, needle) -> None:
    code, err = _run(["--model", config_only, *args], capsys)
    assert code == 2 and needle in err


def test_config_only_model_cannot_be_profiled(config_only, capsys) -> None:
    code, err = _run(["--model", config_only, "--budget", "24GB"], capsys)
    assert code == 2 and "only a config" in err
