"""The register-operand fused dequantize + wgmma variants (wgmma_rega_variants.py, beside this
file) against cuBLAS fp16 and the dequantize-then-cuBLAS path, on an H100.

    python bench/results/dropped/wgmma-rega-sweep-run.py --out bench/results     # on a Hopper GPU

Checks every config's output against a float32 reference first (odd M and N, bias, every
group size the kernel takes, both zero-point modes), then times M = 2048 (and --ms) over the
benchmark's 10 layer shapes as bench/kernels.py does (CUDA graph over weight copies).
Writes kernel-variants-<gpu>-wgmma-rega.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

from autoquant.formats import QuantFormat  # noqa: E402
from autoquant.hardware.measure import gpu_identity, time_in_graph, weight_clones, weight_copies  # noqa: E402
from autoquant.quant import dequantize, quantize  # noqa: E402
from bench.kernels import SHAPES  # noqa: E402
from kernels import wo_matmul  # noqa: E402
sys.path.insert(0, str(Path(__file__).resolve().parent))
from wgmma_rega_variants import rega_matmul  # noqa: E402

CONFIGS = {  # name -> rega_matmul's tile arguments: block = (W rows, x rows, K)
    "w128x256-s4": dict(block=(128, 256, 64), stages=4),
    "ws-s4": dict(block=(128, 256, 64), stages=4, ws=True),
    "ws-nb3-s5": dict(block=(128, 256, 64), stages=5, ws=True, nbuf=3),
    "ws-nb3-s6": dict(block=(128, 256, 64), stages=6, ws=True, nbuf=3),
    "ws-nb3-s5-lw4": dict(block=(128, 256, 64), stages=5, ws=True, nbuf=3, load_warps=4, load_regs=40),
    "nb3-s5": dict(block=(128, 256, 64), stages=5, nbuf=3),
    "ws-k128-s3": dict(block=(128, 256, 128), stages=3, ws=True),
    # diagnostic, timed without the checks: a constant A tile (no code reads, no dequantize)
    "diag-const-a-ws-nb3": dict(block=(128, 256, 64), stages=5, ws=True, nbuf=3, mode=1),
}


def fused(x, qw, cfg, bias=None, y=None):
    n, k = qw.shape
    y = torch.empty(x.shape[0], n, dtype=x.dtype, device=x.device) if y is None else y
    z = qw.zeros.contiguous() if qw.zeros is not None else None
    rega_matmul(x, qw.codes, qw.scales, z, z.stride(0) if z is not None else 0, 1,
                         qw.format.effective_group(k), bias, y, **CONFIGS[cfg])
    return y


def check(cfgs) -> list[dict]:
    out = []
    cases = [(2048, 4096, 4096, "int4-g128-sym", False), (2048, 4096, 4096, "int4-g128-asym", True),
             (777, 1000, 4096, "int4-g64-asym", False), (1500, 1536, 2048, "int4-pc-sym", True),
             (300, 520, 1088, "int4-g64-sym", False), (130, 256, 8192, "int4-pc-asym", False)]
    for m, n, k, f, has_bias in cases:
        torch.manual_seed(m + n)
        fmt = QuantFormat.parse(f)
        qw = quantize(torch.randn(n, k, dtype=torch.float16, device="cuda") * 0.02, fmt)
        x = torch.randn(m, k, dtype=torch.float16, device="cuda")
        bias = torch.randn(n, dtype=torch.float16, device="cuda") if has_bias else None
        ref = x.float() @ dequantize(qw, torch.float32).t() + (bias.float() if has_bias else 0)
        for cfg in cfgs:
            if fmt.effective_group(k) % CONFIGS[cfg]["block"][2]:
                continue  # the kernel does not take this group size (supported() says so)
            y = torch.full((m, n), float("nan"), dtype=torch.float16, device="cuda")
            fused(x, qw, cfg, bias, y)
            rel = ((y.float() - ref).norm() / ref.norm()).item()
            ok = bool(rel < 3e-3) and not bool(torch.isnan(y).any())
            out.append(dict(cfg=cfg, M=m, N=n, K=k, format=f, bias=has_bias, rel_err=rel, ok=ok))
            print(f"check {cfg} {f} M={m} N={n} K={k} bias={has_bias}: rel {rel:.2e} {'ok' if ok else 'WRONG'}", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="bench/results")
    ap.add_argument("--ms", default="2048")
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--formats", default="int4-g128-sym,int4-g128-asym")
    args = ap.parse_args()
    cfgs = args.configs.split(",")
    t0 = time.time()
    checks = check([c for c in cfgs if not c.startswith("diag-")])
    good = [c for c in cfgs if c.startswith("diag-") or all(r["ok"] for r in checks if r["cfg"] == c)]
    records = []
    for model, shapes in SHAPES.items():
        for role, (n, k) in shapes.items():
            torch.manual_seed(0)
            w16 = torch.randn(n, k, dtype=torch.float16, device="cuda") * 0.02
            w16s = weight_clones(w16, weight_copies(n * k * 2))
            for m in map(int, args.ms.split(",")):
                x = torch.randn(m, k, dtype=torch.float16, device="cuda")
                fp16 = time_in_graph([lambda w=w: F.linear(x, w) for w in w16s])
                for f in args.formats.split(","):
                    fmt = QuantFormat.parse(f)
                    qw = quantize(w16, fmt)
                    qws = weight_clones(qw, weight_copies(fmt.storage_bytes(n, k)))
                    times = {"dequant+cublas": time_in_graph([lambda q=q: wo_matmul(x, q) for q in qws])}
                    for cfg in good:
                        ys = [torch.empty(m, n, dtype=torch.float16, device="cuda") for _ in range(2)]
                        times[cfg] = time_in_graph([lambda q=q, y=ys[i % 2]: fused(x, q, cfg, y=y) for i, q in enumerate(qws)])
                    # cuBLAS again at the end: the GPU's clock under this load drifts
                    fp16 = min(fp16, time_in_graph([lambda w=w: F.linear(x, w) for w in w16s]))
                    for kern, s in times.items():
                        records.append(dict(model=model, role=role, N=n, K=k, M=m, format=f, kernel=kern,
                                            ms=s * 1e3, fp16_ms=fp16 * 1e3, speedup=fp16 / s, tflops=2 * m * n * k / s / 1e12))
                    best = max(times, key=lambda c: fp16 / times[c])
                    print(f"{model} {role} M={m} {f}: fp16 {fp16*1e6:.0f} us; " +
                          ", ".join(f"{c} {fp16 / s:.3f}" for c, s in times.items()) + f"  best {best}", flush=True)
                    del qws, qw
            del w16s, w16
            torch.cuda.empty_cache()
    summary = {}
    for kern in ["dequant+cublas"] + good:
        for f in args.formats.split(","):
            for m in map(int, args.ms.split(",")):
                v = [r["speedup"] for r in records if r["kernel"] == kern and r["format"] == f and r["M"] == m]
                if v:
                    summary[f"{kern} {f} M={m}"] = statistics.median(v)
    best_each = {}
    for f in args.formats.split(","):
        for m in map(int, args.ms.split(",")):
            per_shape = {}
            for r in records:
                if r["format"] == f and r["M"] == m and r["kernel"] in good and not r["kernel"].startswith("diag-"):
                    key = (r["model"], r["role"])
                    per_shape[key] = max(per_shape.get(key, 0), r["speedup"])
            if per_shape:
                best_each[f"best fused config a shape {f} M={m}"] = statistics.median(per_shape.values())
    for kv in list(summary.items()) + list(best_each.items()):
        print(f"median {kv[0]}: {kv[1]:.3f}x")
    ident = gpu_identity()
    name = "h100" if "H100" in ident["name"] else ident["name"].split()[-1].lower()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    path = Path(args.out) / f"kernel-variants-{name}-wgmma-rega.json"
    path.write_text(json.dumps(dict(gpu=ident, seconds=time.time() - t0, configs={c: {a: str(v) for a, v in kw.items()} for c, kw in CONFIGS.items()},
                                    checks=checks, summary=summary, best_config_each_shape=best_each, records=records), indent=1))
    print(f"wrote {path} ({time.time() - t0:.0f}s)")


if __name__ == "__main__":
    main()
