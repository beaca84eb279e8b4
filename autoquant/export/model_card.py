"""The README.md written beside an exported checkpoint: what the plan is, what it measured, how to load it."""

from __future__ import annotations

import json
from typing import Any

from autoquant.plan import Plan


def _fmt_bytes(n: float) -> str:
    from autoquant.costs import format_bytes

    return format_bytes(int(n))


def _loading(engine: str, path: str) -> str:
    if engine == "vllm":
        return f"```bash\nvllm serve {path}\n```\n(compressed-tensors `pack-quantized`; vLLM picks its weight-only kernel.)"
    if engine == "transformers":
        return ("```python\nfrom transformers import AutoModelForCausalLM  # needs `pip install compressed-tensors`\n"
                f"model = AutoModelForCausalLM.from_pretrained(\"{path}\")\n```")
    return ""


def model_card(plan: Plan, *, model: str, engine: str, fmt: str, bits_per_weight: float, path: str,
               command: str) -> str:
    meta: dict[str, Any] = plan.metadata
    lines = [f"# {model}, quantized by autoquant", "",
             f"Mixed-precision plan for **{engine}**, written as **{fmt}**: {plan.summary()}; "
             f"{bits_per_weight:.2f} bits per linear weight on average.", ""]
    measured = meta.get("measured")
    if measured:
        ppl = measured.get("perplexity")
        ref = meta.get("reference_perplexity")
        text = measured.get("eval_text") or measured.get("text") or "the search's held-out text"
        row = f"- quality (measured by autoquant on {measured.get('eval_tokens', '?')} tokens of {text}): "
        row += f"KL {measured.get('kl', float('nan')):.4f} nats/token vs fp16"
        if ppl is not None:
            row += f", perplexity {ppl:.3f}" + (f" (fp16 {ref:.3f})" if ref else "")
        lines.append(row)
    else:
        lines.append("- quality: not measured for this plan (a uniform plan, or made outside `autoquant search`)")
    mem = meta.get("memory")
    if mem:
        lines.append(f"- serving memory: {_fmt_bytes(mem['total_bytes'])} total, {_fmt_bytes(mem['linear_bytes'])} "
                     "linear weights (estimated by autoquant's memory model)")
    lat = meta.get("latency")
    if lat:
        hw = meta.get("hardware", {}).get("name", "?")
        label = "estimated" if lat.get("estimated", True) else "measured"
        lines.append(f"- decode step: {lat['decode_s'] * 1e3:.2f} ms on {hw} ({label})")
    lines += ["", "## Load", "", _loading(engine, path) or "", "",
              "```python\nfrom autoquant.export import load_quantized\n"
              f"model = load_quantized(\"{path}\", device=\"cuda\")  # autoquant's Triton kernels\n```", "",
              "## Made by", "", f"```bash\n{command}\n```", "",
              "`autoquant_plan.json` holds the per-layer formats and the search's metadata.", ""]
    search = meta.get("search")
    if search:
        lines += ["<details><summary>search metadata</summary>", "", "```json",
                  json.dumps(search, indent=2), "```", "</details>", ""]
    return "\n".join(lines)
