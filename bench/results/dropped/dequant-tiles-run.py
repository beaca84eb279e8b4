"""Dequantize pass alone (bandwidth) per tiling, then the M = 2048 path (pass + cuBLAS) with the best."""
import json, os, sys, statistics as st, importlib.util, time
import torch, torch.nn.functional as F
sys.path.insert(0, os.getcwd()); sys.path.insert(0, os.path.join(os.getcwd(), "bench/results/dropped"))
from kernels import wo_matmul
from dequant_tiles import dequant_into
from autoquant.formats import QuantFormat
from autoquant.quant import quantize, dequantize
from autoquant.hardware.measure import time_in_graph, weight_clones, weight_copies, measure_bandwidth
spec = importlib.util.spec_from_file_location("bk", "bench/kernels.py"); bk = importlib.util.module_from_spec(spec); spec.loader.exec_module(bk)
C = [(64, 128, 1, 4, False), (64, 128, 1, 4, True), (32, 128, 4, 4, True), (16, 128, 8, 4, True), (32, 128, 2, 4, True),
     (64, 128, 2, 8, True), (128, 128, 1, 8, False), (16, 128, 4, 2, True)]
bw = measure_bandwidth(); print(f"copy bandwidth {bw/1e12:.3f} TB/s", flush=True)
out = []; t0 = time.time(); m = 2048
for model, roles in bk.SHAPES.items():
    for role, (n, k) in roles.items():
        torch.manual_seed(0)
        w16 = torch.randn(n, k, dtype=torch.float16, device="cuda") * 0.02
        x = torch.randn(m, k, dtype=torch.float16, device="cuda")
        for f in ("int4-g128-sym", "int4-g128-asym"):
            fmt = QuantFormat.parse(f); qw = quantize(w16, fmt); ref = dequantize(qw, torch.float16)
            qws = weight_clones(qw, weight_copies(fmt.storage_bytes(n, k)))
            wbuf = torch.empty(n, k, dtype=torch.float16, device="cuda")
            nbytes = fmt.storage_bytes(n, k) + n * k * 2
            rec = {"model": model, "role": role, "format": f, "bytes": nbytes, "alone_us": {}}
            for c in C:
                wbuf.fill_(float("nan")); dequant_into(qw, wbuf, *c)
                assert not wbuf.isnan().any() and torch.allclose(wbuf.float(), ref.float(), rtol=2e-3, atol=1e-5), ("WRONG", c)
                t = time_in_graph([lambda q=q: dequant_into(q, wbuf, *c) for q in qws])
                rec["alone_us"][str(c)] = t * 1e6
            del wbuf
            ranked = sorted(C, key=lambda c: rec["alone_us"][str(c)])
            fp16 = time_in_graph([lambda: F.linear(x, w16)])
            cur = time_in_graph([lambda q=q: wo_matmul(x, q) for q in qws])
            rec.update(fp16_us=fp16 * 1e6, current_us=cur * 1e6)
            for c in ranked[:2]:
                def path(q, c=c):
                    w = dequant_into(q, torch.empty(n, k, dtype=torch.float16, device="cuda"), *c)
                    return torch.mm(x, w.t())
                bk.check_output(path(qw), x, ref.float(), str(c))
                rec[f"path {c}"] = time_in_graph([lambda q=q: path(q) for q in qws]) * 1e6
            cur2 = time_in_graph([lambda q=q: wo_matmul(x, q) for q in qws])
            rec["current2_us"] = cur2 * 1e6
            out.append(rec)
            a = rec["alone_us"]
            print(f"{model} {role} {f}: alone " + " ".join(f"{a[str(c)]:.1f}({nbytes/a[str(c)]/1e6/bw*1e12:.2f})" for c in C) +
                  f" | fp16 {fp16*1e6:.1f} current {cur*1e6:.1f}/{cur2*1e6:.1f} ({fp16/cur:.3f}/{fp16/cur2:.3f}x) " +
                  " ".join(f"{c}: {rec[f'path {c}']:.1f} ({fp16*1e6/rec[f'path {c}']:.3f}x)" for c in ranked[:2]) + f" [{time.time()-t0:.0f}s]", flush=True)
            del qws
        del w16, x; torch.cuda.empty_cache()
for f in ("int4-g128-sym", "int4-g128-asym"):
    R = [r for r in out if r["format"] == f]
    print(f, "median frac BW alone:", " ".join(f"{c}:{st.median(r['bytes']/r['alone_us'][str(c)]/1e6/bw*1e12 for r in R):.3f}" for c in C))
    print(f, "median speedup current", round(st.median(r["fp16_us"] / r["current_us"] for r in R), 3), round(st.median(r["fp16_us"] / r["current2_us"] for r in R), 3),
          "best-variant path", round(st.median(r["fp16_us"] / min(v for kk, v in r.items() if kk.startswith("path")) for r in R), 3))
json.dump({"bandwidth": bw, "records": out}, open(os.path.join(sys.argv[1], "dq_bench.json"), "w"), indent=1)
