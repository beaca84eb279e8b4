"""Run on c995bda with dot-pdl-wait.diff applied and, for the second run, a third mode added by
hand: W.SMALL_PDL = 2 issued `prefetch.global.L2` of each row's first 256 code bytes between
launch_dependents and the wait (that prologue is now the kernel's PDL=True). It no longer runs as is:
the kept code picks config and PDL per problem in a graph (kernels/graph_pick.py).
Results: results/kernel-variants-h100-dot-pdl-wait.json (off/on), -dot-pdl-modes.json (off/wait/pf).
"""
"""M = 4 and 16 (tl.dot kernel): same tuned config launched explicitly with and without PDL
(wait at the start), graphs over copies; order off, on, off, on."""
import json, os, sys, statistics as st, importlib.util
import torch, torch.nn.functional as F, triton
sys.path.insert(0, os.getcwd())
from kernels import wo_matmul, KernelConfig
W = sys.modules["kernels.wo_matmul"]
SMS = torch.cuda.get_device_properties(0).multi_processor_count
from autoquant.formats import QuantFormat
from autoquant.quant import quantize, dequantize
from autoquant.hardware.measure import time_in_graph, weight_clones, weight_copies
spec = importlib.util.spec_from_file_location("bk", "bench/kernels.py"); bk = importlib.util.module_from_spec(spec); spec.loader.exec_module(bk)
out = []
for model, roles in bk.SHAPES.items():
    for role, (n, k) in roles.items():
        torch.manual_seed(0)
        w16 = torch.randn(n, k, dtype=torch.float16, device="cuda") * 0.02
        for m in (4, 16):
            x = torch.randn(m, k, dtype=torch.float16, device="cuda")
            w16s = weight_clones(w16, weight_copies(n * k * 2))
            fp16 = time_in_graph([lambda w=w: F.linear(x, w) for w in w16s]); del w16s
            for f in ("int4-g128-sym", "int4-g128-asym"):
                fmt = QuantFormat.parse(f); qw = quantize(w16, fmt); ref = dequantize(qw, torch.float32)
                qws = weight_clones(qw, weight_copies(fmt.storage_bytes(n, k)))
                wo_matmul(x, qw); c = W.tuned_config(m).all_kwargs()
                cfg = KernelConfig(block_n=c["BLOCK_N"], block_k=c["BLOCK_K"], num_warps=c["num_warps"],
                                   num_stages=c["num_stages"], split_k=c["SPLIT_K"], block_m=W.dot_rows(m),
                                   groups_per_step=c.get("NG", 1), kernel="dot")
                rec = {"model": model, "role": role, "M": m, "format": f, "fp16_us": fp16 * 1e6, "config": str(c), "programs": triton.cdiv(n, c["BLOCK_N"]) * c["SPLIT_K"], "warps": c["num_warps"]}
                for kind, pdl in (("off", 0), ("wait", 1), ("pf", 2), ("off2", 0), ("wait2", 1), ("pf2", 2)):
                    W.SMALL_PDL = pdl
                    bk.check_output(wo_matmul(x, qw, config=cfg), x, ref, kind)
                    rec[kind] = time_in_graph([lambda q=q: wo_matmul(x, q, config=cfg) for q in qws]) * 1e6
                W.SMALL_PDL = 0
                out.append(rec)
                print(f"M={m} {model} {role} {f}: fp16 {fp16*1e6:.1f} off {rec['off']:.1f}/{rec['off2']:.1f} wait {rec['wait']:.1f}/{rec['wait2']:.1f} pf {rec['pf']:.1f}/{rec['pf2']:.1f} [{c['BLOCK_N']}x{c['BLOCK_K']} split {c['SPLIT_K']}]", flush=True)
                del qws
        del w16; torch.cuda.empty_cache()
for m in (4, 16):
    for f in ("int4-g128-sym", "int4-g128-asym"):
        R = [r for r in out if r["M"] == m and r["format"] == f]
        print(f"M={m} {f} median speedup off %.3f wait %.3f pf %.3f off2 %.3f wait2 %.3f pf2 %.3f" % tuple(st.median(r["fp16_us"] / r[k] for r in R) for k in ("off", "wait", "pf", "off2", "wait2", "pf2")))
json.dump(out, open(os.path.join(sys.argv[1], "pdl_small.json"), "w"), indent=1)
