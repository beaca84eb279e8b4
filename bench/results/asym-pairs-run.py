"""Run from the repository root on a GPU, at the commit that made asymmetric int4 decode sum word pairs:
git show 6790045:kernels/wo_matmul.py > .devcarry/wo_matmul_head.py; OUT=DIR python bench/results/asym-pairs-run.py
(results/kernel-variants-h100-asym-pairs.json). M = 1: the word kernel before (HEAD: asymmetric int4 one word at a time, (q - z)/16) and after
(two words summed in half2, (q - z)/32), each tuned in the same call, timed in graphs over weight copies;
order old, new, old, new. Also: relative error with x scaled up (fp16 headroom of the half2 sums)."""
import json, os, sys, time, statistics as st, importlib.util
import torch, torch.nn.functional as F
sys.path.insert(0, os.getcwd())
import autoquant.kernels
NEW = sys.modules["autoquant.kernels.wo_matmul"]
spec = importlib.util.spec_from_file_location("wo_old", ".devcarry/wo_matmul_head.py"); OLD = importlib.util.module_from_spec(spec); sys.modules["wo_old"] = OLD; spec.loader.exec_module(OLD)
from autoquant.formats import QuantFormat
from autoquant.quant import quantize, dequantize
from autoquant.hardware.measure import time_in_graph, weight_clones, weight_copies
spec = importlib.util.spec_from_file_location("bk", "bench/kernels.py"); bk = importlib.util.module_from_spec(spec); spec.loader.exec_module(bk)
fmts = os.environ.get("FMTS", "int4-g128-asym").split(",")
ms = [int(v) for v in os.environ.get("MS", "1").split(",")]
out = []; t0 = time.time()
# headroom: one layer, x scaled so the products approach fp16 range
torch.manual_seed(1)
for f in ("int4-g128-asym", "int4-g128-sym"):
    fmt = QuantFormat.parse(f); n, k = 4096, 4096
    w16 = torch.randn(n, k, dtype=torch.float16, device="cuda") * 0.02
    qw = quantize(w16, fmt); ref_w = dequantize(qw, torch.float32)
    for scale in (1.0, 100.0, 1000.0, 4000.0):
        x = (torch.randn(1, k, device="cuda") * scale).half()
        ref = x.float() @ ref_w.t()
        errs = {}
        for kind, mod in (("old", OLD), ("new", NEW)):
            y = mod.wo_matmul_packed(x, qw.codes, qw.scales, qw.zeros, fmt, n, k)
            errs[kind] = ((y.float() - ref).norm() / ref.norm()).item()
        print(f"headroom {f} x*{scale:g} max|x| {x.abs().max().item():.0f}: rel err old {errs['old']:.2e} new {errs['new']:.2e}", flush=True)
        out.append({"headroom": f, "x_scale": scale, "max_abs_x": x.abs().max().item(), **errs})
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
            nbytes = fmt.storage_bytes(n, k) + 2 * m * (n + k)
            rec = {"model": model, "role": role, "N": n, "K": k, "M": m, "format": f, "fp16_us": fp16 * 1e6}
            for kind, mod in (("old", OLD), ("new", NEW), ("old2", OLD), ("new2", NEW)):
                y = mod.wo_matmul_packed(x, qw.codes, qw.scales, qw.zeros, fmt, n, k)
                rel = bk.check_output(y, x, ref, f"{kind} {f} {model} {role}")
                cfg = mod.tuned_config(m)
                secs = time_in_graph([lambda q=q, mod=mod: mod.wo_matmul_packed(x, q.codes, q.scales, q.zeros, fmt, n, k) for q in qws])
                rec[kind] = {"us": secs * 1e6, "speedup": fp16 / secs, "gbps": nbytes / secs / 1e9, "rel_err": rel, "config": str(cfg)}
            out.append(rec)
            print(f"M={m} {model} {role} {f}: fp16 {fp16*1e6:.1f} old {rec['old']['us']:.1f}/{rec['old2']['us']:.1f} new {rec['new']['us']:.1f}/{rec['new2']['us']:.1f} us [{rec['new']['config']}] ({time.time()-t0:.0f}s)", flush=True)
            del qws
        del w16; torch.cuda.empty_cache()
for m in ms:
    for f in fmts:
        R = [r for r in out if r.get("format") == f and r["M"] == m]
        print(f"M={m}", f, "median speedup old %.3f new %.3f old2 %.3f new2 %.3f" % tuple(st.median(r[k]["speedup"] for r in R) for k in ("old", "new", "old2", "new2")))
json.dump(out, open(os.path.join(os.environ["OUT"], "asym_pairs.json"), "w"), indent=1)
