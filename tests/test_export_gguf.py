"""GGUF export: refusals (fast), and the SmolLM2 round trip through transformers and llama.cpp (slow).

The round trip reads the file with nothing of autoquant's: transformers' own GGUF loader
(`gguf_file=`) and tokenizer (autoquant.quality.perplexity only scores the loaded model); and, where
llama-cpp-python is installed, llama.cpp itself.
"""

from __future__ import annotations

import math

import pytest
import torch

from autoquant.cli import main
from autoquant.errors import UserError
from autoquant.quality import perplexity
from autoquant.export.gguf_file import check_gguf_plan, tensor_types
from autoquant.formats import QuantFormat
from autoquant.plan import Plan

EVAL_TOKENS = 2048
SEQ = 512


def test_a_plan_with_a_non_gguf_format_is_refused_naming_the_layer():
    plan = Plan({"a.q_proj": QuantFormat.parse("q4_0"), "a.k_proj": QuantFormat.parse("int4-g128-asym")})
    with pytest.raises(UserError, match="layer a.k_proj: int4-g128-asym has no GGUF form"):
        check_gguf_plan(plan, {"a.q_proj": 64, "a.k_proj": 64})
    with pytest.raises(UserError, match="layer a.q_proj: q4_0 needs rows of whole 32-weight blocks"):
        check_gguf_plan(Plan({"a.q_proj": QuantFormat.parse("q4_0")}), {"a.q_proj": 40})


def test_cli_refuses_in_one_line(tmp_path, capsys):
    code = main(["export", "--format", "gguf", "--plan", "int8-pc-sym", "--out", str(tmp_path / "m.gguf")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "has no GGUF form" in err[0] and "layer model.layers.0" in err[0]
    assert not (tmp_path / "m.gguf").exists()


def _mixed_plan(layers) -> Plan:
    """q8_0 on the sensitive down projections and v, q5_1 on the first/last block's rest, q4_0 elsewhere."""
    plan = Plan.uniform("q4_0", layers)
    last = max(l.block for l in layers if l.block is not None)
    for l in layers:
        if l.role == "lm_head":
            plan.formats[l.name] = QuantFormat.parse("fp16")  # tied: stays the embedding
        elif l.role in ("down", "v"):
            plan.formats[l.name] = QuantFormat.parse("q8_0")
        elif l.block in (0, last):
            plan.formats[l.name] = QuantFormat.parse("q5_1")
    return plan


def _windows(tokenizer) -> torch.Tensor:
    from autoquant.data import (
        evaluation_text,  # the held-out text (wikitext-2 test); only its text
    )

    ids = tokenizer(evaluation_text().text[: EVAL_TOKENS * 8], add_special_tokens=False, return_tensors="pt").input_ids[0]
    return ids[:EVAL_TOKENS].reshape(-1, SEQ)


@pytest.fixture(scope="module")
def exported(smollm2, tmp_path_factory):
    from autoquant.export.gguf_file import export_gguf
    from autoquant.layers import discover_layers

    source, _model, _tok = smollm2
    plan = _mixed_plan(discover_layers(_model))
    path = export_gguf(source, plan, tmp_path_factory.mktemp("gguf") / "smollm2-mixed.gguf", progress=False)
    return source, plan, path


@pytest.mark.slow
def test_transformers_reads_what_autoquant_measured(exported):
    """The file's perplexity in transformers is the fake-quantized plan's, within 1%."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from autoquant.apply import temporarily_quantized
    from autoquant.models import load_model

    source, plan, path = exported
    types = tensor_types(path)
    assert {"q4_0", "q5_1", "q8_0"} <= set(types) and "output.weight" not in str(types)
    tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    windows = _windows(tok)
    hf = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32).eval()
    assert hf.config.tie_word_embeddings
    ppl_file = perplexity(hf, windows)
    ours = load_model(source)
    ppl_ref = perplexity(ours, windows)
    quantized = {n: f for n, f in plan.formats.items() if not f.is_float}
    with temporarily_quantized(ours, quantized):
        ppl_plan = perplexity(ours, windows)
    assert abs(ppl_file / ppl_plan - 1) < 0.01, (ppl_file, ppl_plan)
    assert ppl_plan > ppl_ref * 1.002  # the quantization is really there, and the test could fail


@pytest.mark.slow
def test_llama_cpp_runs_the_file(exported):
    """llama.cpp's own perplexity of the file is transformers' within 3% (its CPU kernels
    quantize activations to 8 bits for the dot products, which transformers does not)."""
    llama_cpp = pytest.importorskip(
        "llama_cpp", reason="llama-cpp-python not installed (.ci/run builds it: "
        "CMAKE_ARGS=-DGGML_NATIVE=OFF pip install llama-cpp-python)")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _source, _plan, path = exported
    tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    windows = _windows(tok)[:2]
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=SEQ, logits_all=True, n_threads=2, verbose=False)
    nll = 0.0
    for w in windows:
        llm.reset()
        llm.eval(w.tolist())
        logits = torch.tensor(llm.scores[: SEQ - 1], dtype=torch.float32)
        nll += torch.nn.functional.cross_entropy(logits, w[1:], reduction="sum").item()
    ppl_llama = math.exp(nll / (windows.shape[0] * (SEQ - 1)))
    hf = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32).eval()
    ppl_hf = perplexity(hf, windows)
    assert abs(ppl_llama / ppl_hf - 1) < 0.03, (ppl_llama, ppl_hf)
