"""M = 2048 / 256: W-as-A (registers -> wgmma) large-M kernel vs the dequantize+cuBLAS path and fp16."""
import json, os, sys, statistics as st, importlib.util, time
import torch, torch.nn.functional as F
sys.path.insert(0, os.getcwd()); sys.path.insert(0, os.path.join(os.getcwd(), "bench/results/dropped"))
from kernels import wo_matmul
import swap_ab as swap
from autoquant.formats import QuantFormat
from autoquant.quant import quantize, dequantize
from autoquant.hardware.measure import time_in_graph, weight_clones, weight_copies
spec = importlib.util.spec_from_file_location("bk", "bench/kernels.py"); bk = importlib.util.module_from_spec(spec); spec.loader.exec_module(bk)
CFGS = [(256, 128, 64, 8, 3), (256, 128, 128, 8, 2), (128, 128, 64, 4, 4), (128, 256, 64, 8, 3), (256, 128, 64, 8, 4),
        (128, 128, 128, 4, 3), (128, 256, 64, 8, 4)]
MS = [int(a) for a in sys.argv[2].split(",")] if len(sys.argv) > 2 else [2048]
out = []; t0 = time.time()
for model, roles in bk.SHAPES.items():
    for role, (n, k) in roles.items():
        torch.manual_seed(0)
        w16 = torch.randn(n, k, dtype=torch.float16, device="cuda") * 0.02
        for m in MS:
            x = torch.randn(m, k, dtype=torch.float16, device="cuda")
            w16s = weight_clones(w16, weight_copies(n * k * 2))
            fp16 = time_in_graph([lambda w=w: F.linear(x, w) for w in w16s]); del w16s
            for f in ("int4-g128-sym", "int4-g128-asym"):
                fmt = QuantFormat.parse(f); qw = quantize(w16, fmt); ref = dequantize(qw, torch.float32)
                qws = weight_clones(qw, weight_copies(fmt.storage_bytes(n, k)))
                rec = {"model": model, "role": role, "M": m, "format": f, "fp16_us": fp16 * 1e6}
                bk.check_output(wo_matmul(x, qw), x, ref, "current")
                rec["current"] = time_in_graph([lambda q=q: wo_matmul(x, q) for q in qws]) * 1e6
                for c in CFGS:
                    try:
                        bk.check_output(swap.swap_matmul(x, qw, *c), x, ref, f"swap {c}")
                        rec[str(c)] = time_in_graph([lambda q=q: swap.swap_matmul(x, q, *c) for q in qws]) * 1e6
                    except Exception as e:
                        rec[str(c)] = None; print("FAIL", c, type(e).__name__, str(e)[:200], flush=True)
                best = min((v, kk) for kk, v in rec.items() if kk.startswith("(") and v)
                rec["best"] = best
                out.append(rec)
                print(f"M={m} {model} {role} {f}: fp16 {fp16*1e6:.1f} current {rec['current']:.1f} ({fp16*1e6/rec['current']:.3f}x) best swap {best[0]:.1f} {best[1]} ({fp16*1e6/best[0]:.3f}x) | " +
                      " ".join(f"{fp16*1e6/rec[str(c)]:.2f}" if rec[str(c)] else "-" for c in CFGS) + f"  [{time.time()-t0:.0f}s]", flush=True)
                del qws
        del w16; torch.cuda.empty_cache()
for m in MS:
    for f in ("int4-g128-sym", "int4-g128-asym"):
        R = [r for r in out if r["M"] == m and r["format"] == f]
        print(f"M={m} {f} median current {st.median(r['fp16_us']/r['current'] for r in R):.3f} best-swap {st.median(r['fp16_us']/r['best'][0] for r in R):.3f} " +
              " ".join(f"{c}:{st.median(r['fp16_us']/r[str(c)] for r in R if r[str(c)]):.3f}" for c in CFGS))
json.dump(out, open(os.path.join(sys.argv[1], "swap_bench.json"), "w"), indent=1)
