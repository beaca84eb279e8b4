# Archived driver of a dropped attempt: needs bench/results/dropped/pipe-grid.diff applied on 3bd9e7c;
# run from the repository root on a GPU: python3 bench/results/dropped/pipe-grid-tuned.py OUTDIR
"""M = 1: the stream kernel (tuned) vs the pipelined grid kernel (tuned), same call, 10 shapes."""
import json, os, sys, time, statistics as st
import torch, torch.nn.functional as F
sys.path.insert(0, os.getcwd())
import kernels
W = sys.modules["kernels.wo_matmul"]
from kernels import wo_matmul
from autoquant.formats import QuantFormat
from autoquant.quant import quantize, dequantize
from autoquant.hardware.measure import time_in_graph, weight_clones, weight_copies
import importlib.util
spec = importlib.util.spec_from_file_location("bk", "bench/kernels.py"); bk = importlib.util.module_from_spec(spec); spec.loader.exec_module(bk)
fmts = sys.argv[2].split(",") if len(sys.argv) > 2 else ["int4-g128-sym", "int4-g128-asym"]
out = []
t0 = time.time()
for model, roles in bk.SHAPES.items():
    for role, (n, k) in roles.items():
        torch.manual_seed(0)
        w16 = torch.randn(n, k, dtype=torch.float16, device="cuda") * 0.02
        x = torch.randn(1, k, dtype=torch.float16, device="cuda")
        w16s = weight_clones(w16, weight_copies(n * k * 2))
        fp16 = time_in_graph([lambda w=w: F.linear(x, w) for w in w16s]); del w16s
        for f in fmts:
            fmt = QuantFormat.parse(f); qw = quantize(w16, fmt); ref = dequantize(qw, torch.float32)
            qws = weight_clones(qw, weight_copies(fmt.storage_bytes(n, k)))
            rec = {"model": model, "role": role, "N": n, "K": k, "format": f, "fp16_us": fp16 * 1e6}
            for kind in ("stream", "pipe"):
                W.DECODE_PIPE = kind == "pipe"
                y = wo_matmul(x, qw)
                bk.check_output(y, x, ref, f"{kind} {f} {model} {role}")
                cfg = W.tuned_config(1)
                secs = time_in_graph([lambda q=q: wo_matmul(x, q) for q in qws])
                rec[kind] = {"us": secs * 1e6, "speedup": fp16 / secs, "config": str(cfg)}
            out.append(rec)
            print(f"{model} {role} {f}: fp16 {fp16*1e6:.1f} stream {rec['stream']['us']:.1f} pipe {rec['pipe']['us']:.1f} us  [{rec['pipe']['config']}] ({time.time()-t0:.0f}s)", flush=True)
        del w16, qw, qws; torch.cuda.empty_cache()
for f in fmts:
    R = [r for r in out if r["format"] == f]
    print(f, "median speedup stream %.3f pipe %.3f best-of %.3f" % (
        st.median(r["stream"]["speedup"] for r in R), st.median(r["pipe"]["speedup"] for r in R),
        st.median(max(r["stream"]["speedup"], r["pipe"]["speedup"]) for r in R)))
json.dump(out, open(os.path.join(sys.argv[1], "pipe_cmp.json"), "w"), indent=1)
