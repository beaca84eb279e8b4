"""Persistent fused kernel (kernels/wgmma_int4.py) against its PAIRED / LATE knob variants (wgmma_var.py: apply
wgmma-persistent-knobs.diff to kernels/wgmma_int4.py) and dequantize + cuBLAS; run 1 compared the one-program-a-tile
kernel of 000625e instead (results/kernel-variants-h100-wgmma-persistent-{1,2}.json). OUT=dir python this.py"""
import importlib.util, json, statistics, sys, time, os
from pathlib import Path
import torch, torch.nn.functional as F
ROOT = Path(__file__).resolve().parents[3]; sys.path.insert(0, str(ROOT))
from autoquant.formats import QuantFormat
from autoquant.hardware.measure import time_in_graph, weight_clones, weight_copies
from autoquant.quant import quantize
from bench.kernels import SHAPES
from kernels import wgmma_int4
spec = importlib.util.spec_from_file_location("wgmma_var", Path(__file__).with_name("wgmma_var.py"))
var = importlib.util.module_from_spec(spec); spec.loader.exec_module(var)
import importlib as il
wm = il.import_module("kernels.wo_matmul")

def mk(mod, **kw):
    def f(x, qw, y):
        mod.wgmma_int4_matmul(x, qw.codes, qw.scales, qw.zeros, qw.format.effective_group(qw.shape[1]), None, y, **kw)
    return f
def dq(x, qw, y):
    n, k = qw.shape
    z, szn, szg = wm.zero_args(qw.zeros, x.device, qw.format.bits)
    wm._dequant_matmul(x, qw.codes, qw.scales, z, szn, szg, qw.format, qw.format.effective_group(k), n, k, None, y)
paths = {"persistent": mk(wgmma_int4), "paired": mk(var, paired=True), "late": mk(var, late=True),
         "paired+late": mk(var, paired=True, late=True), "dequant+cublas": dq, "persistent-again": mk(wgmma_int4)}
ms = [int(v) for v in os.environ.get("MS", "512,1024,2048,4096").split(",")]
fmts = os.environ.get("FMTS", "int4-g128-sym,int4-g128-asym").split(",")
recs = []
t0 = time.time()
for model, shapes in SHAPES.items():
    for role, (n, k) in shapes.items():
        torch.manual_seed(0)
        w16 = torch.randn(n, k, dtype=torch.float16, device="cuda") * 0.02
        w16s = weight_clones(w16, weight_copies(n * k * 2))
        for m in ms:
            x = torch.randn(m, k, dtype=torch.float16, device="cuda")
            fp16 = time_in_graph([lambda w=w, x=x: F.linear(x, w) for w in w16s])
            for f in fmts:
                qw = quantize(w16, QuantFormat.parse(f))
                # correctness of the persistent kernel against the old one and dequant+cuBLAS (same fp32 math order as old)
                ya = torch.full((m, n), float("nan"), dtype=torch.float16, device="cuda"); yb = ya.clone(); yc = ya.clone()
                paths["persistent"](x, qw, ya); dq(x, qw, yc)
                err_old = 0.0
                for p in ("paired", "late", "paired+late"):
                    yb.fill_(float("nan")); paths[p](x, qw, yb); err_old = max(err_old, (ya.float() - yb.float()).abs().max().item()); err_dq = ((ya.float() - yc.float()).norm() / yc.float().norm()).item()
                qws = weight_clones(qw, weight_copies(qw.format.storage_bytes(n, k)))
                ys = [torch.empty(m, n, dtype=torch.float16, device="cuda") for _ in range(2)]
                t = {p: time_in_graph([lambda q=q, y=ys[i % 2], fn=fn, x=x: fn(x, q, y) for i, q in enumerate(qws)]) for p, fn in paths.items()}
                fp16 = min(fp16, time_in_graph([lambda w=w, x=x: F.linear(x, w) for w in w16s]))
                for p, s in t.items():
                    recs.append(dict(model=model, role=role, N=n, K=k, M=m, format=f, path=p, ms=s * 1e3, fp16_ms=fp16 * 1e3, speedup=fp16 / s))
                print(f"{model} {role} M={m} {f}: " + ", ".join(f"{p} {fp16 / s:.3f}" for p, s in t.items()) + f"  maxdiff-old {err_old:.3g} rel-dq {err_dq:.2e}", flush=True)
                del qws, qw
        del w16s, w16; torch.cuda.empty_cache()
summ = {}
for f in fmts:
    for m in ms:
        for p in paths:
            summ[f"{p} {f} M={m}"] = statistics.median(r["speedup"] for r in recs if r["format"] == f and r["M"] == m and r["path"] == p)
for kk, v in summ.items(): print(f"median {kk}: {v:.3f}")
Path(os.environ["OUT"], "pers-cmp.json").write_text(json.dumps(dict(summary=summ, records=recs, seconds=time.time() - t0), indent=1))
