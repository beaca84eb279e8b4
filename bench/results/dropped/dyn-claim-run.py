"""Run from the repository root on a GPU at a83ff46 (no patch: the kernel is in dyn-claim.py):
    python bench/results/dropped/dyn-claim-run.py OUT_DIR [model:role,...]
M = 1: tuned decode stream vs the stream with dynamically claimed chunks (dyn.py),
explicit configs ranked by cold-L2 event time, top 4 re-timed in graphs over weight copies."""
import json, os, sys, time, statistics as st
import torch, torch.nn.functional as F, triton
sys.path.insert(0, os.getcwd()); sys.path.insert(0, os.path.join(os.getcwd(), "bench", "results", "dropped"))
import kernels
W = sys.modules["kernels.wo_matmul"]
from kernels import wo_matmul
from autoquant.formats import QuantFormat
from autoquant.quant import quantize, dequantize
from autoquant.hardware.measure import time_in_graph, weight_clones, weight_copies
import importlib.util
spec = importlib.util.spec_from_file_location("bk", "bench/kernels.py"); bk = importlib.util.module_from_spec(spec); spec.loader.exec_module(bk)
P = importlib.import_module("dyn-claim")
TILES = [(16, 512, 4, 4), (8, 512, 4, 1), (16, 1024, 8, 4), (8, 1024, 8, 2), (4, 1024, 8, 1), (16, 256, 2, 2),
         (32, 512, 4, 4), (8, 512, 4, 2)]
STAGES = (1, 2, 4, 7, 8)  # here: parts a row tile
OCCS = (1, 2, 3, 4, 6, 8)
fmts = ["int4-g128-sym", "int4-g128-asym"]
only = sys.argv[2].split(",") if len(sys.argv) > 2 else None
sms = W._num_sms()
out = []
t0 = time.time()
for model, roles in bk.SHAPES.items():
    for role, (n, k) in roles.items():
        if only and f"{model}:{role}" not in only:
            continue
        torch.manual_seed(0)
        w16 = torch.randn(n, k, dtype=torch.float16, device="cuda") * 0.02
        x = torch.randn(1, k, dtype=torch.float16, device="cuda")
        w16s = weight_clones(w16, weight_copies(n * k * 2))
        fp16 = time_in_graph([lambda w=w: F.linear(x, w) for w in w16s]); del w16s
        for f in fmts:
            fmt = QuantFormat.parse(f); qw = quantize(w16, fmt); ref = dequantize(qw, torch.float32)
            qws = weight_clones(qw, weight_copies(fmt.storage_bytes(n, k)))
            bk.check_output(wo_matmul(x, qw), x, ref, "stream")
            cfg0 = str(W.tuned_config(1))
            base = time_in_graph([lambda q=q: wo_matmul(x, q) for q in qws])
            cands = []
            for (bn, bkk, ng, w) in TILES:
                for stg in STAGES:
                    if (k // bkk) % stg:
                        continue
                    units = triton.cdiv(n, bn) * stg
                    try:
                        bk.check_output(P.dyn(x, qw, bn, bkk, w, ng, stg, min(units, sms)), x, ref, "dyn")
                        bk.check_output(P.dyn(x, qw, bn, bkk, w, ng, stg, min(units, 4 * sms)), x, ref, "dyn")
                        assert P._SCHED[x.device].item() == 0, "claim counter not reset"
                    except Exception as e:
                        print("fail", bn, bkk, ng, w, stg, type(e).__name__, str(e)[:120], flush=True); continue
                    for occ in OCCS:
                        progs = min(units, sms * occ)
                        fn = (lambda a=(bn, bkk, w, ng, stg, progs): P.dyn(x, qw, *a))
                        cands.append((W._bench(fn, [0.5])[0], (bn, bkk, w, ng, stg, progs)))
                        if progs == units:
                            break
            cands.sort()
            best = None
            for _, a in cands[:4]:
                g = time_in_graph([lambda q=q, a=a: P.dyn(x, q, *a) for q in qws])
                if best is None or g < best[0]:
                    best = (g, a)
            rec = {"model": model, "role": role, "N": n, "K": k, "format": f, "fp16_us": fp16 * 1e6,
                   "stream_us": base * 1e6, "stream_config": cfg0, "pipe_us": best[0] * 1e6,
                   "pipe_config": dict(zip(("block_n", "block_k", "warps", "ng", "parts", "programs"), best[1])),
                   "pipe_top_event_ms": [(c[0], c[1]) for c in cands[:6]]}
            if fmt.storage_bytes(n, k) <= 40 * 2**20:
                rec["stream_l2hot_us"] = time_in_graph([lambda: wo_matmul(x, qw)] * 32) * 1e6
                rec["pipe_l2hot_us"] = time_in_graph([lambda: P.dyn(x, qw, *best[1])] * 32) * 1e6
            out.append(rec)
            print(f"{model} {role} {f}: fp16 {fp16*1e6:.1f} stream {base*1e6:.1f} ({fp16/base:.2f}x) pipe {best[0]*1e6:.1f} ({fp16/best[0]:.2f}x) {best[1]}"
                  f" hot {rec.get('stream_l2hot_us', 0):.1f}/{rec.get('pipe_l2hot_us', 0):.1f} ({time.time()-t0:.0f}s)", flush=True)
            del qws
        del w16; torch.cuda.empty_cache()
for f in fmts:
    R = [r for r in out if r["format"] == f]
    print(f, "median speedup stream %.3f pipe %.3f best-of %.3f" % (
        st.median(r["fp16_us"] / r["stream_us"] for r in R), st.median(r["fp16_us"] / r["pipe_us"] for r in R),
        st.median(r["fp16_us"] / min(r["pipe_us"], r["stream_us"]) for r in R)))
json.dump(out, open(os.path.join(sys.argv[1], "dyn_cmp.json"), "w"), indent=1)
