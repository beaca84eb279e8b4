"""The issue's round trip on the real SmolLM2 (slow), with no autoquant code on the loading side:
`autoquant search --engine transformers --export DIR` at the memory of uniform int4-g128-sym, then
plain `transformers.AutoModelForCausalLM.from_pretrained(DIR)`; its perplexity on the held-out text
autoquant measured the plan on must be within 0.5% of autoquant's number. The search may choose
gptq per layer (`--quantizers rtn,gptq`), so the exported plan's gptq layers, calibrated block by
block at export, make the same round trip."""

from __future__ import annotations

import json

import pytest
import torch

from autoquant.cli import main
from autoquant.data import evaluation_text, token_windows
from autoquant.quality import perplexity
from autoquant.formats import QuantFormat
from autoquant.memory import ModelShape, estimate_memory
from autoquant.models import resolve_model
from autoquant.plan import Plan
from autoquant.quality import SEQ_LEN

# Profiling the aggressive space on a shared CPU machine can pass the default 15 minutes.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]
EVAL_TOKENS = 2048


def test_search_for_transformers_exports_a_checkpoint_transformers_loads(tmp_path, capsys):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    shape = ModelShape.from_source(resolve_model(None))
    budget = estimate_memory(shape, Plan.uniform(QuantFormat.parse("int4-g128-sym"), list(shape.layers))).total_bytes
    out = tmp_path / "smollm2-ct"
    code = main(["search", "--engine", "transformers", "--space", "aggressive", "--quantizers", "rtn,gptq", "--budget", f"{budget}B",
                 "--trials", "200", "--measure", "3", "--eval-tokens", str(EVAL_TOKENS),
                 "--runs-dir", str(tmp_path / "runs"), "--no-progress", "--json", "--export", str(out)])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0 and doc["engine"] == "transformers" and doc["space"] == "aggressive+transformers+rtn+gptq"
    plan = Plan.load(out / "autoquant_plan.json")
    assert plan.calibrated and "gptq" in plan.quantizers.values()  # gptq layers went through the export
    assert plan.metadata["engine"] == "transformers"
    assert all(f.is_float or f.symmetric for f in plan.formats.values())
    assert any(f.bits == 4 for f in plan.formats.values())
    ours = plan.metadata["measured"]["perplexity"]

    # The loading side: transformers (+ compressed-tensors, which it imports itself), nothing else.
    model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert type(model.get_submodule("model.layers.0.mlp.down_proj")).__name__ == "Linear"  # decompressed
    windows = token_windows(tokenizer, evaluation_text(None), min(SEQ_LEN, EVAL_TOKENS), EVAL_TOKENS)
    theirs = perplexity(model, windows)
    with capsys.disabled():
        print(f"\nSmolLM2 transformers round trip: plan {plan.summary()}; budget {budget} B; "
              f"autoquant ppl {ours:.4f}, transformers ppl {theirs:.4f} "
              f"({(theirs / ours - 1) * 100:+.3f}%), reference ppl {plan.metadata['reference_perplexity']:.4f}")
    assert abs(theirs / ours - 1) <= 0.005
