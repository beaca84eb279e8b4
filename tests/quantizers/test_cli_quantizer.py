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


def test_a_plan_whose_calibration_text_is_gone_is_one_line_and_calib_replaces_it(tmp_path, capsys):
    from autoquant.data import TextRef, evaluation_text
    from autoquant.layers import discover_layers
    from autoquant.plan import Plan
    from tiny_models import tiny_model

    save_tiny_model(tmp_path / "m")
    plan = Plan.uniform("int4-g32-sym", discover_layers(tiny_model("llama")), quantizer="gptq")
    plan.calibration = TextRef(str(tmp_path / "gone.txt"), "0123456789abcdef")
    plan.save(tmp_path / "plan.json")
    capsys.readouterr()
    args = ["evaluate", "-m", str(tmp_path / "m"), "-p", str(tmp_path / "plan.json"), "--eval-tokens", "512", "--json"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "gone.txt" in err and "--calib" in err

    mine = tmp_path / "mine.txt"
    mine.write_text(evaluation_text().text[50_000:90_000])
    assert main([*args, "--calib", str(mine)]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["plans"][0]["kl"] > 0
    assert "calibrating on" in err and "mine.txt" in err  # the replacement is said, not silent
