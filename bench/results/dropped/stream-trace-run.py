"""Diagnostic (GPU, at a83ff46): per-program start and end (%globaltimer) and SM of the M = 1 decode
stream inside the benchmark's graph of back-to-back calls; results/kernel-variants-h100-stream-trace.json.
A traced copy of kernels/wo_matmul.py is written to /tmp/wo_trace.py (a trace pointer added to the
word kernel, two timer reads and three stores) and imported beside the real module.

    python bench/results/dropped/stream-trace-run.py OUT_DIR
"""
import os, sys
src = open("kernels/wo_matmul.py").read()
s = src.replace("    M_BUCKET, OCC,\n", "    M_BUCKET, OCC, trace_ptr,\n", 1)
i = s.index("def _gemv_words_kernel(")
j = s.index("    pid = tl.program_id(0)\n", i) + len("    pid = tl.program_id(0)\n")
s = s[:j] + "    t_start = _gtimer(pid)\n" + s[j:]
k = s.index("\n\n@triton.jit\ndef _next_step")
s = s[:k] + """
    t_end = _gtimer(pid)
    tl.store(trace_ptr + pid * 4, t_start)
    tl.store(trace_ptr + pid * 4 + 1, t_end)
    tl.store(trace_ptr + pid * 4 + 2, _smid(pid).to(tl.int64))


@triton.jit
def _gtimer(dummy):
    return tl.inline_asm_elementwise("mov.u64 $0, %globaltimer;", "=l,r", [dummy], dtype=tl.int64, is_pure=False, pack=1)


@triton.jit
def _smid(dummy):
    return tl.inline_asm_elementwise("mov.u32 $0, %smid;", "=r,r", [dummy], dtype=tl.int32, is_pure=False, pack=1)""" + s[k:]
s = s.replace("*args, **common, BLOCK_M=m_bucket(m))", "*args, **common, BLOCK_M=m_bucket(m), trace_ptr=TRACE_BUF)")
s = s.replace("*args, **common, OCC=0, BLOCK_M=m_bucket(m),", "*args, **common, OCC=0, trace_ptr=TRACE_BUF, BLOCK_M=m_bucket(m),")
s = s.replace("def interpreting() -> bool:", "TRACE_BUF = None\n\n\ndef interpreting() -> bool:", 1)
open("/tmp/wo_trace.py", "w").write(s)
import json, os, sys, statistics as st, importlib.util
import torch, triton
sys.path.insert(0, os.getcwd())
import kernels
W = sys.modules["kernels.wo_matmul"]
spec = importlib.util.spec_from_file_location("wo_trace", "/tmp/wo_trace.py"); T = importlib.util.module_from_spec(spec); sys.modules["wo_trace"] = T; spec.loader.exec_module(T)
from autoquant.formats import QuantFormat
from autoquant.quant import quantize, dequantize
from autoquant.hardware.measure import time_in_graph, weight_clones, weight_copies
spec = importlib.util.spec_from_file_location("bk", "bench/kernels.py"); bk = importlib.util.module_from_spec(spec); spec.loader.exec_module(bk)
sms = W._num_sms()
res = []
shapes = [(4096, 14336), (8192, 8192), (14336, 4096), (4096, 4096), (28672, 8192)]
for n, k in shapes:
    torch.manual_seed(0)
    w16 = torch.randn(n, k, dtype=torch.float16, device="cuda") * 0.02
    x = torch.randn(1, k, dtype=torch.float16, device="cuda")
    for f in ("int4-g128-sym", "int4-g128-asym"):
        fmt = QuantFormat.parse(f); qw = quantize(w16, fmt); ref = dequantize(qw, torch.float32)
        W.wo_matmul(x, qw); c = W.tuned_config(1).all_kwargs()
        occ, bn = c["OCC"], c["BLOCK_N"]
        cfg = W.KernelConfig(block_n=bn, block_k=c["BLOCK_K"], num_warps=c["num_warps"], num_stages=c["STAGES"],
                             groups_per_step=c["NG"], ctas=W.stream_programs(n, bn, occ, sms))
        cfgT = T.KernelConfig(**cfg.__dict__)
        programs, parts = W.stream_parts(n, k, bn, c["BLOCK_K"], cfg.ctas)
        qws = weight_clones(qw, weight_copies(fmt.storage_bytes(n, k)))
        bufs = [torch.zeros(programs * 4, dtype=torch.int64, device="cuda") for _ in qws]
        T.TRACE_BUF = bufs[0]
        bk.check_output(T.wo_matmul_packed(x, qw.codes, qw.scales, qw.zeros, fmt, n, k, config=cfgT), x, ref, "trace")
        plain = time_in_graph([lambda q=q: W.wo_matmul_packed(x, q.codes, q.scales, q.zeros, fmt, n, k, config=cfg) for q in qws]) * 1e6
        torch.cuda.synchronize()
        g = torch.cuda.CUDAGraph()
        s = torch.cuda.Stream(); s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            for i, q in enumerate(qws):
                T.TRACE_BUF = bufs[i]; T.wo_matmul_packed(x, q.codes, q.scales, q.zeros, fmt, n, k, config=cfgT)
        torch.cuda.current_stream().wait_stream(s); torch.cuda.synchronize()
        with torch.cuda.graph(g):
            for i, q in enumerate(qws):
                T.TRACE_BUF = bufs[i]; T.wo_matmul_packed(x, q.codes, q.scales, q.zeros, fmt, n, k, config=cfgT)
        for _ in range(3):
            g.replay()
        torch.cuda.synchronize()
        e0 = torch.cuda.Event(enable_timing=True); e1 = torch.cuda.Event(enable_timing=True)
        e0.record(); g.replay(); e1.record(); torch.cuda.synchronize()
        traced = e0.elapsed_time(e1) * 1e3 / len(qws)
        tr = [b.view(programs, 4).cpu() for b in bufs]
        calls = []
        for i in range(1, len(tr)):
            t = tr[i]; start, end = t[:, 0].double(), t[:, 1].double()
            prev_end = tr[i - 1][:, 1].max().item()
            t0 = start.min().item()
            dur = (end - start)
            per_sm = {}
            for p in range(programs):
                smid = int(t[p, 2]); a, b_ = per_sm.get(smid, (1e30, 0))
                per_sm[smid] = (min(a, start[p].item()), max(b_, end[p].item()))
            calls.append({
                "gap_from_prev_us": (t0 - prev_end) / 1e3,
                "span_us": (end.max().item() - t0) / 1e3,
                "start_spread_us": (start.max().item() - t0) / 1e3,
                "end_spread_us": (end.max().item() - end.min().item()) / 1e3,
                "first_end_us": (end.min().item() - t0) / 1e3,
                "prog_dur_med_us": dur.median().item() / 1e3, "prog_dur_min_us": dur.min().item() / 1e3, "prog_dur_max_us": dur.max().item() / 1e3,
                "sm_busy_med_us": st.median(b_ - a for a, b_ in per_sm.values()) / 1e3, "sms_used": len(per_sm),
            })
        agg = {key: st.median(c_[key] for c_ in calls) for key in calls[0]}
        rec = {"N": n, "K": k, "format": f, "config": str(c), "programs": programs, "graph_us": plain, "graph_traced_us": traced, **agg}
        res.append(rec)
        print(f"{n}x{k} {f} progs {programs} [{bn}x{c['BLOCK_K']} w{c['num_warps']} OCC {occ}] graph {plain:.1f} us (traced {traced:.1f}): "
              + " ".join(f"{key} {v:.2f}" for key, v in agg.items()), flush=True)
        del qws, bufs
json.dump(res, open(os.path.join(sys.argv[1], "trace.json"), "w"), indent=1)
