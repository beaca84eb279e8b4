"""What gptq and awq cost on a GPU, per layer of Llama-3-8B, and what that makes of a profile.

    python bench/quantizer_seconds.py --model .device-model/llama-3-8b --out bench/results   # on a GPU

The profile quantizes every (layer, format, quantizer) entry of the space alone
(`quantizers.single.quantized_alone`, as its workers do; gptq with act-order). Per distinct layer
shape of the model and quantized format of the space, this times that call on the GPU: random
weights (std 0.02) and the H = X^T X of 8,192 correlated tokens with uneven channel scales
(LLM-like inputs; the time does not depend on the values). Mean of 2 calls (one warm-up call first in the run), synchronised.
The output error tr(dW H dW^T) against rtn's is printed as a check that the quantizers did
their job. The whole-profile figure sums the timings over the entries the space would profile
for the model: it is the quantizers' compute only (no statistics pass, no KL measurements), on
one GPU; labelled "extrapolated" since it is not a timed profile.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autoquant.formats import QuantFormat  # noqa: E402
from autoquant.hardware.measure import gpu_identity  # noqa: E402
from autoquant.layers import discover_layers  # noqa: E402
from autoquant.models import build_meta_model, load_config, resolve_model  # noqa: E402
from autoquant.quantizers.awq import output_error  # noqa: E402
from autoquant.quantizers.single import quantized_alone  # noqa: E402
from autoquant.sensitivity.profile import profile_targets  # noqa: E402
from autoquant.space import load_space  # noqa: E402

TOKENS = 8192


def _hessian(k: int, device: str, seed: int = 0) -> torch.Tensor:
    g = torch.Generator(device=device).manual_seed(seed)
    mix = torch.randn(k, k, generator=g, device=device) / k**0.5 + torch.eye(k, device=device)
    scale = torch.rand(k, generator=g, device=device).mul(4).add(0.1)
    x = (torch.randn(TOKENS, k, generator=g, device=device) @ mix) * scale
    return x.t() @ x


def _time(fn, repeats: int = 2, warm_up: bool = False) -> float:
    if warm_up:  # the first call of the run: allocator, cuSOLVER handles, Triton-free torch kernels
        fn()
    out = []
    for _ in range(repeats):
        torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="a model directory (a config is enough)")
    ap.add_argument("--space", default="aggressive", help="whose (format, quantizer) entries to time")
    ap.add_argument("--out", default="bench/results")
    ap.add_argument("--max-seconds", type=float, default=270, help="stop timing new entries after this")
    args = ap.parse_args()
    dev = "cuda"
    source = resolve_model(args.model)
    meta = build_meta_model(load_config(source))
    layers = discover_layers(meta)
    space = load_space(args.space)
    targets = profile_targets(layers, space, meta)
    shape_of = {l.name: (l.out_features, l.in_features) for l in layers}
    entries = Counter((shape_of[name], fmt, q) for name, variants in targets.items() for fmt, q in variants)

    seconds: dict[tuple, float] = {}
    records, not_timed = [], []
    t_start = time.perf_counter()
    for (n, k), fmt, q in sorted({(s, f, q) for s, f, q in entries}):
        if q == "rtn":
            continue
        if time.perf_counter() - t_start > args.max_seconds:
            not_timed.append([[n, k], fmt, q])
            continue
        f = QuantFormat.parse(fmt)
        w = torch.randn(n, k, device=dev, generator=torch.Generator(device=dev).manual_seed(1)) * 0.02
        h = _hessian(k, dev)
        s = _time(lambda: quantized_alone(w, f, q, h), warm_up=not records)
        err = output_error(w, quantized_alone(w, f, q, h), h) / output_error(w, quantized_alone(w, f, "rtn", h), h)
        seconds[(n, k), fmt, q] = s
        records.append({"shape": [n, k], "format": fmt, "quantizer": q, "seconds": s, "error_vs_rtn": err})
        print(f"{n:>6} x {k:<6} {fmt:<15} {q:<5} {s * 1e3:9.1f} ms   output error {err:.3f} x rtn", flush=True)
        del w, h
        torch.cuda.empty_cache()

    per_quantizer: dict[str, float | None] = {}
    for (shape, fmt, q), count in entries.items():
        if q != "rtn":
            one = seconds.get((shape, fmt, q))
            total = per_quantizer.get(q, 0.0)
            per_quantizer[q] = None if one is None or total is None else total + count * one
    ident = gpu_identity()
    doc = {
        "gpu": ident, "model": source.display, "space": space.name,
        "tokens_in_h": TOKENS, "per_layer": records, "not_timed": not_timed,
        "profile_quantizer_seconds_extrapolated": per_quantizer,
        "profile_entries": {q: sum(c for (_, _, qq), c in entries.items() if qq == q) for q in {e[2] for e in entries}},
    }
    print("whole-profile quantizer compute (extrapolated, one GPU):",
          ", ".join(f"{q} {s:.0f} s" if s is not None else f"{q} (not all timed)" for q, s in per_quantizer.items()))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    slug = "".join(c if c.isalnum() else "-" for c in (ident.get("spec") or ident["name"]).lower())
    path = out / f"quantizer-seconds-{slug}-{source.display.split('/')[-1]}.json"
    path.write_text(json.dumps(doc, indent=2) + "\n")
    print("wrote", path)


if __name__ == "__main__":
    main()
