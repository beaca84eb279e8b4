"""`autoquant evaluate --quantizer` on a tiny model with a tokenizer (calibration needs text)."""

import json

from autoquant.cli import main
from tiny_models import save_tiny_model


def test_evaluate_measures_a_gptq_plan(tmp_path, capsys):
    save_tiny_model(tmp_path / "m")
    code = main(["evaluate", "-m", str(tmp_path / "m"), "-p", "int4-g32-sym", "--quantizer", "gptq",
                 "--eval-tokens", "512", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    (row,) = out["plans"]
    assert row["plan"] == "int4-g32-sym (gptq)" and row["quantizer"] == "gptq" and row["kl"] > 0
