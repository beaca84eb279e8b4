"""End to end on the real SmolLM2 (slow): profile (cached), search, measure, recommend, resume.

The issue's quality check: with the memory budget set to what uniform int4-g128-asym needs,
the recommended plan measures a lower perplexity on held-out text than uniform int4-g128-asym,
at no more memory. Also the real-table hypervolume check, a rerun adding trials, and the
same-numbers check: `autoquant evaluate` of the recommended plan gives exactly what the search
measured.
"""

from __future__ import annotations

import json

import pytest

from autoquant.cli import main
from autoquant.formats import QuantFormat
from autoquant.memory import ModelShape, estimate_memory
from autoquant.models import resolve_model
from autoquant.plan import Plan
from autoquant.search import Budgets, SearchRequest, run_search

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def int4_budget() -> int:
    shape = ModelShape.from_source(resolve_model(None))
    plan = Plan.uniform(QuantFormat.parse("int4-g128-asym"), list(shape.layers))
    return estimate_memory(shape, plan).total_bytes


def test_search_beats_uniform_int4_at_its_memory_and_resumes(tmp_path, int4_budget, capsys) -> None:
    req = SearchRequest(budgets=Budgets(int4_budget), trials=300, eval_tokens=1024, measure_plans=4,
                        runs_dir=str(tmp_path), progress=False)
    result = run_search(req)
    rec = result.recommended
    int4 = next(b for b in result.front.baselines if b.label == "uniform int4-g128-asym")
    with capsys.disabled():  # the numbers the issue asks for, shown with -s
        print(f"\nbudget {int4_budget} B; recommended trial {rec.trial}: {rec.costs.memory_bytes} B, "
              f"ppl {rec.measured['perplexity']:.3f}, KL {rec.measured['kl']:.4f}; uniform int4-g128-asym: "
              f"{int4.costs.memory_bytes} B, ppl {int4.measured['perplexity']:.3f}, KL {int4.measured['kl']:.4f}; "
              f"reference ppl {result.reference.perplexity:.3f}")
    assert rec.costs.memory_bytes <= int4.costs.memory_bytes == int4_budget
    assert rec.measured["perplexity"] < int4.measured["perplexity"]
    assert rec.measured["kl"] < int4.measured["kl"]

    # The same numbers: `autoquant evaluate` of the written plan on the same text and token count
    # reports exactly what the search measured and stored for it.
    capsys.readouterr()
    assert main(["evaluate", "--plan", result.files["plan"], "--eval-tokens", "1024", "--json"]) == 0
    (evaluated,) = json.loads(capsys.readouterr().out)["plans"]
    assert (evaluated["perplexity"], evaluated["kl"]) == (rec.measured["perplexity"], rec.measured["kl"])

    # Files: the plan reloads with its search metadata; the JSON names the recommended plan.
    plan = Plan.load(result.files["plan"])
    assert plan.formats == rec.plan.formats and plan.quantizers == rec.plan.quantizers
    assert "gptq" in plan.quantizers.values()  # the default space lets the search choose gptq, and it does
    assert plan.metadata["measured"]["perplexity"] == rec.measured["perplexity"]
    assert plan.metadata["latency"]["estimated"] is True  # no GPU here: the roofline
    doc = json.loads((result.run_dir / "front.json").read_text())
    assert doc["recommended"]["trial"] == rec.trial and doc["latency_estimated"] is True
    assert (result.run_dir / "front.png").stat().st_size > 10_000
    # ... and the app reads the run back: front, recommended plan, sensitivity beside it.
    from autoquant.runs import find_runs, front_frame, plans_with_layers

    assert doc["model_spec"] is None and (result.run_dir / "sensitivity.json").is_file()
    (run,) = find_runs(tmp_path)
    assert run.sensitivity_path is not None and front_frame(run)["recommended"].sum() == 1
    assert plans_with_layers(run)[doc["recommended"]["label"]].formats == rec.plan.formats

    # The real-table hypervolume check on this study's 300 trials, within the budget.
    with capsys.disabled():
        print(f"hypervolume of 300 trials vs exact DP front within budget (real table): {result.proxy_hv_ratio:.4f}")
    assert 0.98 <= result.proxy_hv_ratio <= 1.0 + 1e-9

    # Rerun through the CLI with the same study: the earlier trials stay, new ones are added,
    # and --json puts one JSON document on stdout.
    capsys.readouterr()  # drop the prints above
    code = main(["search", "--budget", f"{int4_budget}B", "--trials", "40", "--eval-tokens", "1024",
                 "--measure", "4", "--runs-dir", str(tmp_path), "--no-progress", "--json"])
    out = capsys.readouterr().out
    assert code == 0
    again = json.loads(out)
    assert again["study"]["trials"] == 340 and again["study"]["added"] == 40 and again["study"]["seeded"] == 0
    assert again["recommended"]["measured"]["perplexity"] < again["baselines"][2]["measured"]["perplexity"]
    assert again["baselines"][2]["label"] == "uniform int4-g128-asym"

    # A quality budget that no plan within the memory budget meets: exit 3, naming the best measured.
    code = main(["search", "--budget", f"{int4_budget}B", "--quality-budget", "kl=0.001", "--trials", "0",
                 "--eval-tokens", "1024", "--measure", "4", "--runs-dir", str(tmp_path), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 3
    assert "no measured plan meets the quality budget kl=0.001" in err and "the best measured is KL" in err
