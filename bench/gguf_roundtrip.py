"""GGUF round trip on SmolLM2: export plans as GGUF, read them back with transformers alone, and
compare held-out perplexity with autoquant's own (fake-quantized) measurement of each plan.

    python bench/gguf_roundtrip.py runs/<model>/<study>/plan.json q4_0 [--tokens 4096]

Each plan argument is a plan file or a uniform format. Writes bench/results/gguf-roundtrip.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from autoquant.apply import temporarily_quantized
from autoquant.data import evaluation_text, token_windows
from autoquant.quality import perplexity
from autoquant.export.gguf_file import export_gguf, tensor_types
from autoquant.memory import ModelShape, estimate_memory
from autoquant.models import load_model, load_tokenizer, resolve_model
from autoquant.plan import resolve_plan

SEQ = 512


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
            plan = resolve_plan(spec, list(shape.layers), source.display)
            quantized = {n: f for n, f in plan.formats.items() if not f.is_float}
            with temporarily_quantized(ours, quantized):
                ppl_ours = perplexity(ours, windows)
            path = export_gguf(source, plan, Path(tmp) / "m.gguf", progress=False)
            hf = AutoModelForCausalLM.from_pretrained(tmp, gguf_file="m.gguf", dtype=torch.float32).eval()
            ppl_file = perplexity(hf, windows)
            rows.append({
                "plan": spec, "summary": plan.summary(), "types": dict(tensor_types(path)),
                "memory_bytes": estimate_memory(shape, plan).total_bytes, "file_bytes": path.stat().st_size,
                "perplexity_autoquant": ppl_ours, "perplexity_transformers_gguf": ppl_file,
                "relative_difference": ppl_file / ppl_ours - 1,
            })
            print(json.dumps(rows[-1]), flush=True)
            del hf
            path.unlink()
    result = {"model": source.display, "eval_tokens": int(windows.numel()), "text": "wikitext-2 test", "rows": rows}
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
