"""GGUF round trip on SmolLM2: export plans as GGUF, read them back with transformers alone and
run them in llama.cpp, and compare held-out perplexity with autoquant's own (fake-quantized)
measurement of each plan.

    python bench/gguf_roundtrip.py q4_0 recipe:q4_0 runs/<model>/<study>/plan.json [--tokens 4096]

Each plan argument is a uniform format (`q4_0`: every linear tensor and the tied token_embd in
q4_0, as `llama-quantize --pure` writes it), `recipe:q4_0` (llama.cpp's own Q4_0 recipe on this
model: the tied token_embd/output at q8_0, the rest q4_0; llama.cpp picks q6_k there and falls
back to q8_0 because 576-wide rows are not whole 256-weight k-quant blocks), or a plan file (a
search's plan.json). llama.cpp runs where llama-cpp-python is installed.
Writes bench/results/gguf-roundtrip.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from autoquant.apply import temporarily_quantized
from autoquant.data import evaluation_text, token_windows
from autoquant.export.gguf_file import export_gguf, tensor_types
from autoquant.formats import QuantFormat
from autoquant.memory import ModelShape, estimate_memory
from autoquant.models import load_model, load_tokenizer, resolve_model
from autoquant.plan import Plan, resolve_plan
from autoquant.quality import llama_cpp_perplexity, perplexity

SEQ = 512


def _plan(spec: str, shape: ModelShape, model: str) -> Plan:
    if spec.startswith("recipe:"):
        plan = Plan.uniform(spec.removeprefix("recipe:"), list(shape.layers), model)
        for layer in shape.layers:
            if layer.role == "lm_head":
                plan.formats[layer.name] = QuantFormat.parse("q8_0")
        return plan
    return resolve_plan(spec, list(shape.layers), model)


def _has_llama_cpp() -> bool:
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        return False
    return True


def main() -> None:
    from transformers import AutoModelForCausalLM

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("plans", nargs="+")
    ap.add_argument("--tokens", type=int, default=4096)
    ap.add_argument("--out", default="bench/results/gguf-roundtrip.json")
    args = ap.parse_args()
    torch.set_num_threads(2)
    source = resolve_model(None)
    shape = ModelShape.from_source(source)
    windows = token_windows(load_tokenizer(source), evaluation_text(), SEQ, args.tokens)
    ours = load_model(source)
    rows = [{"plan": "source model (fp32)", "perplexity": perplexity(ours, windows)}]
    with tempfile.TemporaryDirectory() as tmp:
        for spec in args.plans:
            plan = _plan(spec, shape, source.display)
            quantized = {n: f for n, f in plan.formats.items() if not f.is_float}
            with temporarily_quantized(ours, quantized):
                ppl_ours = perplexity(ours, windows)
            path = export_gguf(source, plan, Path(tmp) / "m.gguf", progress=False)
            hf = AutoModelForCausalLM.from_pretrained(tmp, gguf_file="m.gguf", dtype=torch.float32).eval()
            ppl_file = perplexity(hf, windows)
            row = {
                "plan": spec, "summary": plan.summary(), "types": dict(tensor_types(path)),
                "memory_bytes": estimate_memory(shape, plan).total_bytes, "file_bytes": path.stat().st_size,
                "perplexity_autoquant": ppl_ours, "perplexity_transformers_gguf": ppl_file,
                "relative_difference": ppl_file / ppl_ours - 1,
            }
            if _has_llama_cpp():
                row["perplexity_llama_cpp"] = llama_cpp_perplexity(str(path), windows)
                row["llama_cpp_vs_transformers"] = row["perplexity_llama_cpp"] / ppl_file - 1
            rows.append(row)
            print(json.dumps(rows[-1]), flush=True)
            del hf
            path.unlink()
    result = {"model": source.display, "eval_tokens": int(windows.numel()), "text": "wikitext-2 test", "rows": rows}
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
