"""A runs directory made by real searches (two budgets) on a tiny random Llama that speaks
SmolLM2's tokenizer, so the evaluation text tokenizes as it would for the real model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from autoquant.cli import main
from autoquant.data import calibration_text


def _tiny_model_with_tokenizer(path: Path) -> Path:
    from transformers import LlamaConfig, LlamaForCausalLM

    from autoquant.models import load_tokenizer, resolve_model

    tokenizer = load_tokenizer(resolve_model(None))
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True,
                      initializer_range=0.3)  # peaked outputs, so quantization visibly costs quality
    LlamaForCausalLM(cfg).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def searched_runs(tmp_path_factory) -> Path:
    """runs/tiny-llama/{b549_6mb,b560mb}/ with front.json and sensitivity.json, as
    `autoquant search` writes them."""
    root = tmp_path_factory.mktemp("app-runs")
    model = _tiny_model_with_tokenizer(root / "tiny-llama")
    runs = root / "runs"
    calib = root / "calib.txt"  # the second search calibrates on a file of its own (recorded in its plans)
    calib.write_text(calibration_text().text[200_000:600_000])
    for budget, calib_args in (("549.6MB", []), ("560MB", ["--calib", str(calib)])):  # overhead ~542 MB: the first binds
        code = main(["search", "--model", str(model), "--budget", budget, "--trials", "60", "--eval-tokens", "256",
                     "--measure", "3", "--study", f"b{budget.lower().replace('.', '_')}", "--runs-dir", str(runs),
                     "--no-progress", *calib_args])
        assert code == 0, f"search --budget {budget} exited {code}"
    return runs
