"""The two int4 prefill paths of autoquant.kernels on a Hopper GPU, against cuBLAS fp16: the fused
Gluon kernel (autoquant/kernels/wgmma_int4.py) and dequantize + cuBLAS, over the benchmark's 10 layer
shapes and M in {512, 1024, 2048}. The data behind wo_matmul's choice between them
(`wgmma_int4.pays_off`).

    python bench/prefill_paths.py --out bench/results     # on an sm_90 GPU

Writes prefill-paths-<gpu>.json: one record per (shape, format, M, path) with ms, fp16 ms and
speedup, plus which path wo_matmul takes and the medians.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autoquant.formats import QuantFormat
from autoquant.hardware.measure import gpu_identity
from autoquant.kernels.timing import time_in_graph, weight_clones, weight_copies
from autoquant.quant import quantize
from bench.kernel_bench import SHAPES
from autoquant.kernels import LaunchState, prefill_dequant, wgmma_int4
from autoquant.kernels.problem import MatmulProblem, Operands
from autoquant.kernels.wo_matmul import zero_args

STATE = LaunchState()


def fused(x, qw, y):
    wgmma_int4.wgmma_int4_matmul(x, qw.codes, qw.scales, qw.zeros, qw.format.effective_group(qw.shape[1]), None, y)


def dequant_cublas(x, qw, y):
    n, k = qw.shape
    z, szn, szg = zero_args(qw.zeros, x.device, qw.format.bits, STATE)
    ops = Operands(qw.format, x, qw.codes, qw.scales, z, szn, szg, qw.zeros, None, y)
    prefill_dequant.launch(MatmulProblem.of(x, qw.codes, qw.format, n, k, tuned=True), ops, None, STATE)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="bench/results")
    ap.add_argument("--ms", default="512,1024,2048")
    ap.add_argument("--formats", default="int4-g128-sym,int4-g128-asym")
    args = ap.parse_args()
    t0 = time.time()
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    records = []
    for model, shapes in SHAPES.items():
        for role, (n, k) in shapes.items():
            torch.manual_seed(0)
            w16 = torch.randn(n, k, dtype=torch.float16, device="cuda") * 0.02
            w16s = weight_clones(w16, weight_copies(n * k * 2))
            for m in map(int, args.ms.split(",")):
                x = torch.randn(m, k, dtype=torch.float16, device="cuda")
                fp16 = time_in_graph([lambda w=w, x=x: F.linear(x, w) for w in w16s])
                for f in args.formats.split(","):
                    fmt = QuantFormat.parse(f)
                    qw = quantize(w16, fmt)
                    qws = weight_clones(qw, weight_copies(fmt.storage_bytes(n, k)))
                    ys = [torch.empty(m, n, dtype=torch.float16, device="cuda") for _ in range(2)]
                    times = {name: time_in_graph([lambda q=q, y=ys[i % 2], fn=fn, x=x: fn(x, q, y)
                                                  for i, q in enumerate(qws)])
                             for name, fn in (("wgmma_int4", fused), ("dequant+cublas", dequant_cublas))}
                    fp16 = min(fp16, time_in_graph([lambda w=w, x=x: F.linear(x, w) for w in w16s]))  # clocks drift
                    taken = "wgmma_int4" if wgmma_int4.pays_off(m, n, sms) else "dequant+cublas"
                    for path, s in times.items():
                        records.append(dict(model=model, role=role, N=n, K=k, M=m, format=f, path=path, ms=s * 1e3,
                                            fp16_ms=fp16 * 1e3, speedup=fp16 / s, taken=path == taken))
                    print(f"{model} {role} M={m} {f}: fp16 {fp16 * 1e6:.0f} us; " +
                          ", ".join(f"{p} {fp16 / s:.3f}" for p, s in times.items()) + f"; wo_matmul takes {taken}",
                          flush=True)
                    del qws, qw
            del w16s, w16
            torch.cuda.empty_cache()
    summary = {}
    for f in args.formats.split(","):
        for m in map(int, args.ms.split(",")):
            rows = [r for r in records if r["format"] == f and r["M"] == m]
            for path in ("wgmma_int4", "dequant+cublas"):
                summary[f"{path} {f} M={m}"] = statistics.median(r["speedup"] for r in rows if r["path"] == path)
            summary[f"wo_matmul (the path it takes) {f} M={m}"] = statistics.median(
                r["speedup"] for r in rows if r["taken"])
    for key, v in summary.items():
        print(f"median {key}: {v:.3f}x")
    ident = gpu_identity()
    name = "h100" if "H100" in ident["name"] else ident["name"].split()[-1].lower()
    path = Path(args.out) / f"prefill-paths-{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dict(gpu=ident, seconds=time.time() - t0, sms=sms, summary=summary, records=records),
                               indent=1))
    print(f"wrote {path} ({time.time() - t0:.0f}s)")


if __name__ == "__main__":
    main()
