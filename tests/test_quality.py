"""The one quality meter (autoquant.quality): what profile, search and `autoquant evaluate` measure with.

The same-numbers test: `autoquant evaluate` of a plan and the search's measurement of that
plan (`autoquant.search.run.LazyMeter`, what `run_search` stores in front.json) agree exactly
on the same text. tests/search/test_search_smollm2.py checks it again on a real search's plan.
"""

from __future__ import annotations

import json

import torch
from tiny_models import save_tiny_model

from autoquant.cli import main
from autoquant.data import calibration_text, evaluation_text
from autoquant.formats import QuantFormat
from autoquant.memory import ModelShape
from autoquant.plan import Plan
from autoquant.progress import Progress
from autoquant.quality import Measurement, QualityMeter, eval_windows, load_meter
from autoquant.search.run import LazyMeter

TOKENS = 256  # the tiny models know 256 positions: one window


def _mixed_plan(source) -> Plan:
    layers = list(ModelShape.from_source(source).layers)
    cycle = [QuantFormat.parse(f) for f in ("int4-g128-asym", "int8-pc-sym", "fp16")]
    return Plan({l.name: cycle[i % 3] for i, l in enumerate(layers)}, source.display)


def test_evaluate_and_search_report_the_same_numbers(tmp_path, capsys) -> None:
    source = save_tiny_model(tmp_path / "tiny-llama")
    plan = _mixed_plan(source)
    path = plan.save(tmp_path / "plan.json")
    text = evaluation_text(None, calibration_text())  # both commands' default evaluation text
    with Progress(False) as ui:
        searched = LazyMeter(source, text, TOKENS, ui).measure(plan)

    code = main(["evaluate", "--model", str(source.path), "--plan", str(path), "--eval-tokens", str(TOKENS), "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    (row,) = out["plans"]
    assert searched["kl"] > 1e-5  # the plan really changes the model (the fp16 reference floor is ~1e-6)
    assert (row["perplexity"], row["kl"], row["ppl_change"]) == (
        searched["perplexity"], searched["kl"], searched["ppl_change"])
    assert (out["tokens"], out["reference_perplexity"]) == (searched["tokens"], searched["reference_perplexity"])
    assert out["eval_text"] == searched["text"]


def test_meter_restores_the_model_and_leaves_16_bit_layers_as_loaded(tmp_path) -> None:
    source = save_tiny_model(tmp_path / "tiny-llama")
    text = evaluation_text(None, calibration_text())
    meter = load_meter(source, text, TOKENS, device="cpu")
    before = {k: v.clone() for k, v in meter.model.state_dict().items()}
    plan = _mixed_plan(source)
    first = meter.measure(plan)
    layer = next(n for n, f in plan.formats.items() if not f.is_float)
    one = meter.measure_layer(layer, plan.formats[layer])
    assert all(torch.equal(before[k], v) for k, v in meter.model.state_dict().items())
    again = meter.measure(plan)
    assert (again.perplexity, again.kl) == (first.perplexity, first.kl)  # nothing left behind between plans
    assert 0 < one.kl < first.kl
    fp16 = meter.measure(Plan.uniform(QuantFormat.parse("fp16"), list(ModelShape.from_source(source).layers)))
    assert fp16 is meter.reference and fp16.kl == 0.0 and fp16.ppl_change == 0.0


def test_measurement_reads_records_from_before_reference_perplexity() -> None:
    old = {"perplexity": 11.0, "kl": 0.01, "ppl_change": 0.1, "tokens": 100, "text": "t",
           "text_fingerprint": "f", "seconds": 1.0, "eval_tokens": 100}
    m = Measurement.from_dict(old)
    assert abs(m.reference_perplexity - 10.0) < 1e-12 and m.tokens == 100
    assert Measurement.from_dict(m.to_dict()) == m


def test_windows_are_cut_the_same_way_for_every_command(tmp_path) -> None:
    source = save_tiny_model(tmp_path / "tiny-llama")
    text = evaluation_text(None, calibration_text())
    w = eval_windows(source, text, TOKENS)
    assert w.shape == (1, TOKENS)
    meter = QualityMeter(load_meter(source, text, TOKENS, device="cpu").model, w, text)
    assert meter.tokens == TOKENS - 1 and meter.reference.text == text.name


def test_search_and_evaluate_default_to_the_same_token_count() -> None:
    import inspect

    from autoquant.cli.evaluate import evaluate
    from autoquant.cli.search import search
    from autoquant.quality import DEFAULT_EVAL_TOKENS
    from autoquant.search import SearchRequest

    for command in (evaluate, search):
        assert inspect.signature(command).parameters["eval_tokens"].default == DEFAULT_EVAL_TOKENS
    assert SearchRequest(budgets=None).eval_tokens == DEFAULT_EVAL_TOKENS  # type: ignore[arg-type]


def test_a_quantized_copy_measures_as_the_plan_does() -> None:
    from autoquant.apply import apply_plan
    from autoquant.layers import discover_layers
    from tiny_models import tiny_model

    model, copy = tiny_model("llama"), tiny_model("llama")
    meter = QualityMeter(model, torch.randint(0, 256, (4, 32), generator=torch.Generator().manual_seed(0)))
    plan = Plan.uniform("int4-g32-asym", discover_layers(model))
    apply_plan(copy, plan)
    got, want = meter.measure_model(copy), meter.measure(plan)
    assert got.kl > 0 and abs(got.kl - want.kl) < 1e-9 and got.perplexity == want.perplexity
