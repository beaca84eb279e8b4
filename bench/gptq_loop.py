"""gptq's column loop against an earlier version of it, on the GPU: same codes, how much faster.

    git show <rev>:autoquant/quantizers/gptq.py > /tmp/gptq_before.py
    python bench/gptq_loop.py --before /tmp/gptq_before.py --out bench/results      # on a GPU

Llama-3-8B layer shapes (q/o 4096x4096, gate/up 14336x4096, down 4096x14336), three formats,
act-order as the profile runs it; random weights and the H of 8,192 correlated tokens (as
bench/quantizer_seconds.py). Each timing is the mean of 2 synchronised calls after a warm-up.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autoquant.formats import QuantFormat  # noqa: E402
from autoquant.hardware.measure import gpu_identity  # noqa: E402
from autoquant.quant import unpacked_codes  # noqa: E402
from autoquant.quantizers.gptq import gptq  # noqa: E402

SHAPES = {"q/o": (4096, 4096), "gate/up": (14336, 4096), "down": (4096, 14336)}
FORMATS = ("int4-g128-asym", "int4-g64-asym", "int8-pc-sym")


def _hessian(k: int, tokens: int = 8192) -> torch.Tensor:
    g = torch.Generator(device="cuda").manual_seed(0)
    mix = torch.randn(k, k, generator=g, device="cuda") / k**0.5 + torch.eye(k, device="cuda")
    x = (torch.randn(tokens, k, generator=g, device="cuda") @ mix) * torch.rand(k, generator=g, device="cuda").mul(4).add(0.1)
    return x.t() @ x


def _time(fn) -> float:
    fn()
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(2):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t) / 2


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", required=True, help="an earlier autoquant/quantizers/gptq.py")
    ap.add_argument("--out", default="bench/results")
    args = ap.parse_args()
    spec = importlib.util.spec_from_file_location("gptq_before", args.before)
    before = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(before)
    rows = []
    for role, (n, k) in SHAPES.items():
        w = torch.randn(n, k, device="cuda", generator=torch.Generator(device="cuda").manual_seed(1)) * 0.02
        h = _hessian(k)
        for fmt in FORMATS:
            f = QuantFormat.parse(fmt)
            a, b = before.gptq(w, f, h, act_order=True), gptq(w, f, h, act_order=True)
            same = (unpacked_codes(a) == unpacked_codes(b)).float().mean().item()
            t_before = _time(lambda: before.gptq(w, f, h, act_order=True))
            t_now = _time(lambda: gptq(w, f, h, act_order=True))
            rows.append({"role": role, "shape": [n, k], "format": fmt, "before_s": t_before, "now_s": t_now,
                         "speedup": t_before / t_now, "same_codes": same})
            print(f"{role:<8} {n:>6} x {k:<6} {fmt:<15} {t_before * 1e3:8.1f} -> {t_now * 1e3:8.1f} ms "
                  f"({t_before / t_now:.2f}x)  same codes {same * 100:.3f}%", flush=True)
        del w, h
    ident = gpu_identity()
    slug = "".join(c if c.isalnum() else "-" for c in (ident.get("spec") or ident["name"]).lower())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"gptq-loop-{slug}.json"
    path.write_text(json.dumps({"gpu": ident, "rows": rows}, indent=2) + "\n")
    print("wrote", path)


if __name__ == "__main__":
    main()
