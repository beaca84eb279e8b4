"""Run from the repository root on a GPU: git checkout a83ff46 && git apply bench/results/dropped/scale-bits32.diff;
git show a83ff46:kernels/wo_matmul.py > /tmp/wo_matmul_old.py; python bench/results/dropped/scale-bits32-run.py OUT_DIR
M = 1 (and M = 2 rows): the word kernel before (HEAD) and after the 32-bit scale/zero-point loads,
each tuned in the same call, timed in graphs over weight copies; order old, new, old, new."""
import json, os, sys, time, statistics as st, importlib.util
import torch, torch.nn.functional as F
sys.path.insert(0, os.getcwd())
import kernels
NEW = sys.modules["kernels.wo_matmul"]
spec = importlib.util.spec_from_file_location("wo_old", "/tmp/wo_matmul_old.py"); OLD = importlib.util.module_from_spec(spec); sys.modules["wo_old"] = OLD; spec.loader.exec_module(OLD)
from autoquant.formats import QuantFormat
from autoquant.quant import quantize, dequantize
from autoquant.hardware.measure import time_in_graph, weight_clones, weight_copies
spec = importlib.util.spec_from_file_location("bk", "bench/kernels.py"); bk = importlib.util.module_from_spec(spec); spec.loader.exec_module(bk)
fmts = sys.argv[2].split(",") if len(sys.argv) > 2 else ["int4-g128-sym", "int4-g128-asym"]
ms = [int(v) for v in sys.argv[3].split(",")] if len(sys.argv) > 3 else [1]
out = []
t0 = time.time()
for m in ms:
  for model, roles in bk.SHAPES.items():
    for role, (n, k) in roles.items():
        torch.manual_seed(0)
        w16 = torch.randn(n, k, dtype=torch.float16, device="cuda") * 0.02
        x = torch.randn(m, k, dtype=torch.float16, device="cuda")
        w16s = weight_clones(w16, weight_copies(n * k * 2))
        fp16 = time_in_graph([lambda w=w: F.linear(x, w) for w in w16s]); del w16s
        for f in fmts:
            fmt = QuantFormat.parse(f); qw = quantize(w16, fmt); ref = dequantize(qw, torch.float32)
            qws = weight_clones(qw, weight_copies(fmt.storage_bytes(n, k)))
            rec = {"model": model, "role": role, "N": n, "K": k, "M": m, "format": f, "fp16_us": fp16 * 1e6}
            for kind, mod in (("old", OLD), ("new", NEW), ("old2", OLD), ("new2", NEW)):
                y = mod.wo_matmul_packed(x, qw.codes, qw.scales, qw.zeros, fmt, n, k)
                bk.check_output(y, x, ref, f"{kind} {f} {model} {role}")
                cfg = mod.tuned_config(m)
                secs = time_in_graph([lambda q=q, mod=mod: mod.wo_matmul_packed(x, q.codes, q.scales, q.zeros, fmt, n, k) for q in qws])
                rec[kind] = {"us": secs * 1e6, "speedup": fp16 / secs, "config": str(cfg)}
            out.append(rec)
            print(f"M={m} {model} {role} {f}: fp16 {fp16*1e6:.1f} old {rec['old']['us']:.1f}/{rec['old2']['us']:.1f} new {rec['new']['us']:.1f}/{rec['new2']['us']:.1f} us [{rec['new']['config']}] ({time.time()-t0:.0f}s)", flush=True)
            del qws
        del w16; torch.cuda.empty_cache()
for m in ms:
    for f in fmts:
        R = [r for r in out if r["format"] == f and r["M"] == m]
        print(f"M={m}", f, "median speedup old %.3f new %.3f old2 %.3f new2 %.3f" % tuple(st.median(r[k]["speedup"] for r in R) for k in ("old", "new", "old2", "new2")))
json.dump(out, open(os.path.join(sys.argv[1], "ld32_cmp.json"), "w"), indent=1)
