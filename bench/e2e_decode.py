"""End-to-end decode and prefill of whole models: fp16, uniform int4-g128, a mixed plan, torch int4.

    python bench/e2e_decode.py --model bench/configs/llama-3-8b --out bench/results      # on a GPU
        [--plan PLAN.json]    the mixed plan to time (default: attention int8-pc, MLP int4-g128)
    python bench/e2e_decode.py --smoke                                                   # CPU check

The model is built from its config with random weights (speed needs no real weights). Each
variant swaps its linear layers and is timed the way servers run it:
  * decode: one step at batch 1 and 16 over a static KV cache, captured as a CUDA graph
    (tokens/s = batch / step time); fp16 also eagerly and as torch.compile(reduce-overhead),
    the two ways transformers users decode;
  * prefill: a 2048-token prompt as a CUDA graph.
Also torch's own int4 kernel (`_weight_int4pack_mm`, gpt-fast style, bf16 activations), in the
same run, as the reference a user would compare with. The "rest of the model" (everything but
the linear layers: attention, norms, launches) is reported eagerly and in graphs: decode step
time minus the same model's linear layers timed alone.

Writes e2e-<gpu>-<model>.json with the GPU, driver, torch and triton versions. A variant that
fails records its error instead of numbers (the others still run).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autoquant.formats import QuantFormat  # noqa: E402
from autoquant.kernels import QuantLinear  # noqa: E402
from autoquant.layers import discover_layers, get_module, set_module  # noqa: E402
from autoquant.plan import Plan  # noqa: E402

DECODE_BATCHES = (1, 16)
PREFILL_TOKENS = 2048
CONTEXT = 1024  # cached tokens a decode step attends to


def default_mixed_plan(model: nn.Module) -> Plan:
    """Attention int8 per channel, MLP int4-g128, lm_head fp16: a plan of the kind searches return."""
    formats = {}
    for layer in discover_layers(model):
        if layer.role in ("q", "k", "v", "o"):
            formats[layer.name] = QuantFormat.parse("int8-pc-sym")
        elif layer.role in ("gate", "up", "down"):
            formats[layer.name] = QuantFormat.parse("int4-g128-sym")
        else:
            formats[layer.name] = QuantFormat("fp16")
    return Plan(formats)


def swap_plan(model: nn.Module, plan: Plan) -> None:
    for name, fmt in plan.formats.items():
        if not fmt.is_float:
            set_module(model, name, QuantLinear.from_linear(get_module(model, name), fmt))


class TorchInt4Linear(nn.Module):
    """gpt-fast's int4 weight-only linear: torch's tinygemm kernel, bf16 activations, group 128,
    weights in [0, 15] with a float zero (w = (q - 8) * scale + zero)."""

    def __init__(self, linear: nn.Linear, group: int = 128, inner_k_tiles: int = 8) -> None:
        super().__init__()
        w = linear.weight.detach().float()
        n, k = w.shape
        wg = w.reshape(n, k // group, group)
        lo, hi = wg.amin(-1, keepdim=True), wg.amax(-1, keepdim=True)
        scales = (hi - lo).clamp(min=1e-6) / 15
        q = ((wg - lo) / scales).round().clamp(0, 15).to(torch.int32).reshape(n, k)
        zeros = lo + 8 * scales
        packed_u8 = (q[:, ::2] << 4 | q[:, 1::2]).to(torch.uint8)
        self.register_buffer("packed", torch.ops.aten._convert_weight_to_int4pack(packed_u8, inner_k_tiles))
        sz = torch.cat([scales.reshape(n, -1, 1), zeros.reshape(n, -1, 1)], 2).transpose(0, 1).contiguous()
        self.register_buffer("scales_and_zeros", sz.to(torch.bfloat16))
        self.group, self.out_features = group, n
        self.bias = linear.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        y = torch._weight_int4pack_mm(x.reshape(-1, shape[-1]).to(torch.bfloat16), self.packed, self.group,
                                      self.scales_and_zeros)
        y = y.reshape(*shape[:-1], self.out_features).to(x.dtype)
        return y if self.bias is None else y + self.bias


def swap_torch_int4(model: nn.Module) -> None:
    for layer in discover_layers(model):
        if layer.role != "lm_head":
            set_module(model, layer.name, TorchInt4Linear(get_module(model, layer.name)))


@torch.no_grad()
def step_fn(model: nn.Module, batch: int, context: int, device: str):
    from transformers import StaticCache

    cache = StaticCache(config=model.config, max_cache_len=context + 1)
    ids = torch.randint(0, model.config.vocab_size, (batch, 1), device=device)
    pos = torch.tensor([context], device=device)
    return lambda: model(input_ids=ids, past_key_values=cache, cache_position=pos, use_cache=True).logits


def eager_seconds(fn, reps: int, device: str) -> float:
    for _ in range(2):
        fn()
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / reps


@torch.no_grad()
def linear_only_seconds(model: nn.Module, batch: int, device: str) -> float:
    """The model's linear layers alone, called back to back at `batch` tokens in a CUDA graph."""
    from autoquant.kernels.timing import graph_seconds

    calls = []
    for layer in discover_layers(model):
        mod = get_module(model, layer.name)
        x = torch.randn(batch, layer.in_features, dtype=torch.float16, device=device)
        calls.append(lambda m=mod, x=x: m(x))
    return graph_seconds(lambda: [c() for c in calls], replays=10)


@torch.no_grad()  # else the static cache's in-place updates chain every step's autograd graph (OOM)
def time_variant(model: nn.Module, device: str, smoke: bool, extra_fp16: bool) -> dict:
    out: dict = {"decode": {}, "prefill": {}}
    context = 64 if smoke else CONTEXT
    for batch in DECODE_BATCHES:
        step = step_fn(model, batch, context, device)
        rec: dict = {}
        if smoke:
            rec["eager_s"] = eager_seconds(step, 3, device)
        else:
            from autoquant.kernels.timing import graph_seconds

            rec["graph_s"] = graph_seconds(step, replays=30)
            rec["tokens_per_s"] = batch / rec["graph_s"]
            rec["eager_s"] = eager_seconds(step, 20, device)  # every variant: eager launch cost differs by kernel
            if extra_fp16:
                rec["linear_only_graph_s"] = linear_only_seconds(model, batch, device)
                rec["rest_graph_s"] = rec["graph_s"] - rec["linear_only_graph_s"]
                rec["rest_eager_s"] = rec["eager_s"] - rec["linear_only_graph_s"]
        out["decode"][batch] = rec
    if not smoke:
        from autoquant.hardware.measure import time_prefill

        out["prefill"][PREFILL_TOKENS] = {"graph_s": time_prefill(model, 1, PREFILL_TOKENS)}
    return out


@torch.no_grad()
def compiled_fp16(model: nn.Module, device: str) -> dict:
    """transformers' documented fast path: static cache + torch.compile(mode="reduce-overhead")."""
    model.forward = torch.compile(model.forward, mode="reduce-overhead", fullgraph=True)
    out = {}
    for batch in DECODE_BATCHES:
        s = eager_seconds(step_fn(model, batch, CONTEXT, device), 30, device)
        out[batch] = {"s": s, "tokens_per_s": batch / s}
    return out


def build(config_dir: str, dtype: torch.dtype, device: str) -> nn.Module:
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(config_dir)
    torch.manual_seed(0)
    with torch.device(device):
        return AutoModelForCausalLM.from_config(config, dtype=dtype).eval().requires_grad_(False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=str(ROOT / "bench/configs/llama-3-8b"))
    ap.add_argument("--plan", default=None, help="mixed plan JSON (default: attention int8-pc, MLP int4-g128)")
    ap.add_argument("--out", default="bench/results")
    ap.add_argument("--smoke", action="store_true", help="tiny model on the CPU, eager only: checks the plumbing")
    args = ap.parse_args()
    smoke = args.smoke
    device = "cpu" if smoke else "cuda"
    if smoke:
        sys.path.insert(0, str(ROOT / "tests"))
        from tiny_models import tiny_config

        cfg_dir = Path("/tmp/autoquant-e2e-smoke")
        tiny_config("llama").save_pretrained(cfg_dir)
        args.model = str(cfg_dir)
    dtype = torch.float32 if smoke else torch.float16
    results: dict = {"model": args.model, "context": CONTEXT, "prefill_tokens": PREFILL_TOKENS, "variants": {}}
    if not smoke:
        from autoquant.hardware.measure import gpu_identity

        results["gpu"] = gpu_identity()
    # fp16 under torch.compile last: its compile takes minutes, and a time limit then costs only it
    variants = ["fp16", "int4-g128-sym", "mixed", "torch-int4-g128", "fp16-compiled"]
    out = None
    if not smoke:
        slug = results["gpu"]["name"].lower().replace(" ", "-")
        out = Path(args.out) / f"e2e-{slug}-{Path(args.model).name}.json"
    for name in variants:
        if smoke and name in ("torch-int4-g128", "fp16-compiled"):
            continue  # tinygemm is a CUDA kernel; reduce-overhead compiles CUDA graphs
        t0 = time.time()
        try:
            model = build(args.model, torch.bfloat16 if name.startswith("torch") else dtype, device)
            if name == "int4-g128-sym":
                swap_plan(model, Plan.uniform("int4-g128-sym", [l for l in discover_layers(model) if l.role != "lm_head"]))
            elif name == "mixed":
                plan = Plan.load(Path(args.plan)) if args.plan else default_mixed_plan(model)
                swap_plan(model, plan)
                results["mixed_plan"] = plan.summary()
            elif name.startswith("torch"):
                swap_torch_int4(model)
            if name == "fp16-compiled":
                rec = {"compiled": compiled_fp16(model, device)}
            else:
                rec = time_variant(model, device, smoke, extra_fp16=(name == "fp16"))
            results["variants"][name] = rec
        except Exception as e:  # recorded, not hidden: the file says which variant failed and why
            results["variants"][name] = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}
        print(f"{name}: {time.time() - t0:.1f} s", json.dumps(results["variants"][name])[:300], flush=True)
        model = None
        if device == "cuda":
            torch.cuda.empty_cache()
        add_speedups(results)
        if out is not None:  # after every variant: a time limit keeps what finished
            out.write_text(json.dumps(results, indent=1, default=str) + "\n")
    if smoke:
        print(json.dumps(results, indent=1, default=str)[:2000])
        return
    print(f"wrote {out}")


def add_speedups(results: dict) -> None:
    fp16 = results["variants"].get("fp16", {}).get("decode", {})
    for rec in results["variants"].values():
        for batch, d in rec.get("decode", {}).items():
            if "graph_s" in d and "graph_s" in fp16.get(batch, {}):
                d["speedup_vs_fp16_graph"] = fp16[batch]["graph_s"] / d["graph_s"]


if __name__ == "__main__":
    main()
