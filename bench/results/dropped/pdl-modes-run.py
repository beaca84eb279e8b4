"""Measured on this session's working tree before the final PDL code, when the launcher read an integer
W.DECODE_PDL: 0 off, 1 weights loaded before the wait (kept, now PDL=True), 2 the wait first (dropped).
It no longer runs as is: the kept code has decode_pdl(bool) and the 3-programs-a-SM rule.
M = 1: the decode stream with and without programmatic dependent launch (PDL: each program lets the
next grid launch at its start; the next grid issues its first step's weight loads, then waits for this
one before it reads x), the tuned config launched explicitly both ways, graphs of back-to-back calls
over weight copies (as consecutive quantized layers run). Order off, on, off, on. Outputs of every
call in a PDL graph checked."""
import json, os, sys, time, statistics as st, importlib.util
import torch, torch.nn.functional as F
sys.path.insert(0, os.getcwd())
import kernels
W = sys.modules["kernels.wo_matmul"]
from autoquant.formats import QuantFormat
from autoquant.quant import quantize, dequantize
from autoquant.hardware.measure import time_in_graph, weight_clones, weight_copies
spec = importlib.util.spec_from_file_location("bk", "bench/kernels.py"); bk = importlib.util.module_from_spec(spec); spec.loader.exec_module(bk)
sms = W._num_sms()
fmts = ["int4-g128-sym", "int4-g128-asym"]
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
            W.DECODE_PDL = False
            bk.check_output(W.wo_matmul(x, qw), x, ref, "tuned")
            c = W.tuned_config(1).all_kwargs()
            tuned = time_in_graph([lambda q=q: W.wo_matmul(x, q) for q in qws])
            cfg = W.KernelConfig(block_n=c["BLOCK_N"], block_k=c["BLOCK_K"], num_warps=c["num_warps"], num_stages=c["STAGES"],
                                 groups_per_step=c["NG"], ctas=W.stream_programs(n, c["BLOCK_N"], c["OCC"], sms))
            rec = {"model": model, "role": role, "N": n, "K": k, "format": f, "fp16_us": fp16 * 1e6, "tuned_us": tuned * 1e6,
                   "config": str(c)}
            for kind, pdl in (("off", 0), ("on", 1), ("safe", 2), ("off2", 0), ("on2", 1), ("safe2", 2)):
                W.DECODE_PDL = pdl
                bk.check_output(W.wo_matmul(x, qw, config=cfg), x, ref, f"{kind}")
                secs = time_in_graph([lambda q=q: W.wo_matmul(x, q, config=cfg) for q in qws])
                rec[kind] = {"us": secs * 1e6, "speedup": fp16 / secs}
            # every output of a chained PDL graph, against the reference
            for mode in (1, 2):
              W.DECODE_PDL = mode
              outs = [torch.full((1, n), float("nan"), dtype=torch.float16, device="cuda") for _ in qws]
              s = torch.cuda.Stream(); s.wait_stream(torch.cuda.current_stream())
              with torch.cuda.stream(s):
                  for q, o in zip(qws, outs):
                      W.wo_matmul(x, q, config=cfg, out=o)
              torch.cuda.current_stream().wait_stream(s)
              g = torch.cuda.CUDAGraph()
              with torch.cuda.graph(g):
                  for q, o in zip(qws, outs):
                      W.wo_matmul(x, q, config=cfg, out=o)
              for o in outs:
                  o.fill_(float("nan"))
              g.replay(); g.replay(); torch.cuda.synchronize()
              for i, o in enumerate(outs):
                  bk.check_output(o, x, ref, f"pdl graph call {i}")
              del g, outs
            W.DECODE_PDL = 0
            out.append(rec)
            print(f"{model} {role} {f}: fp16 {fp16*1e6:.1f} tuned {tuned*1e6:.1f} off {rec['off']['us']:.1f}/{rec['off2']['us']:.1f} on {rec['on']['us']:.1f}/{rec['on2']['us']:.1f} safe {rec['safe']['us']:.1f}/{rec['safe2']['us']:.1f} us [{c['BLOCK_N']}x{c['BLOCK_K']} w{c['num_warps']} OCC {c['OCC']}] ({time.time()-t0:.0f}s)", flush=True)
            del qws
        del w16; torch.cuda.empty_cache()
for f in fmts:
    R = [r for r in out if r["format"] == f]
    print(f, "median speedup tuned %.3f off %.3f on %.3f safe %.3f off2 %.3f on2 %.3f safe2 %.3f" % (st.median(r["fp16_us"] / r["tuned_us"] for r in R),
          *(st.median(r[k]["speedup"] for r in R) for k in ("off", "on", "safe", "off2", "on2", "safe2"))))
    print(f, "median BW-equivalent gain on/off: %.3f" % st.median(r["off"]["us"] / r["on"]["us"] for r in R))
json.dump(out, open(os.path.join(sys.argv[1], "pdl_cmp.json"), "w"), indent=1)
