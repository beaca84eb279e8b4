# Archived driver of a dropped attempt: needs bench/results/dropped/pipe-grid.diff applied on 3bd9e7c;
# run from the repository root on a GPU: python3 bench/results/dropped/pipe-grid-explicit.py OUTDIR
"""Explicit pipelined-grid configs timed in the benchmark's graph (DRAM-cold), M = 1, int4-g128-sym."""
import os, sys, json, time, itertools
import torch
sys.path.insert(0, os.getcwd())
import kernels
W = sys.modules["kernels.wo_matmul"]
from kernels import wo_matmul, KernelConfig
from autoquant.formats import QuantFormat
from autoquant.quant import quantize, dequantize
from autoquant.hardware.measure import time_in_graph, weight_clones, weight_copies
tiles = [(16, 1024, 4, 8), (8, 1024, 2, 8), (8, 512, 1, 4), (16, 512, 2, 4), (32, 512, 4, 4), (32, 256, 4, 2),
         (16, 256, 1, 2), (64, 256, 8, 2), (4, 1024, 1, 8), (32, 1024, 8, 8), (16, 512, 4, 4), (8, 256, 1, 2)]
res = []
t0 = time.time()
for n, k in [(4096, 14336), (8192, 8192)]:
    torch.manual_seed(0)
    w16 = torch.randn(n, k, dtype=torch.float16, device="cuda") * 0.02
    x = torch.randn(1, k, dtype=torch.float16, device="cuda")
    fmt = QuantFormat.parse("int4-g128-sym"); qw = quantize(w16, fmt); ref = x.float() @ dequantize(qw, torch.float32).t()
    qws = weight_clones(qw, weight_copies(fmt.storage_bytes(n, k)))
    W.DECODE_PIPE = False
    wo_matmul(x, qw)
    stream = time_in_graph([lambda q=q: wo_matmul(x, q) for q in qws]) * 1e6
    print(f"{n}x{k} stream tuned {stream:.1f} us [{W.tuned_config(1)}]", flush=True)
    rows = []
    for (bn, bk, w, ng), st, sk in itertools.product(tiles, (3, 4, 6, 8), (1, 2, 4, 8)):
        if triton_cdiv := -(-k // bk) < sk: continue
        cfg = KernelConfig(block_n=bn, block_k=bk, num_warps=w, num_stages=st, split_k=sk, groups_per_step=ng, kernel="pipe")
        try:
            y = wo_matmul(x, qw, config=cfg)
        except Exception as e:
            print("fail", cfg, type(e).__name__, str(e)[:100]); continue
        rel = ((y.float() - ref).norm() / ref.norm()).item()
        if not rel < 3e-3:
            print("WRONG", cfg, rel); continue
        us = time_in_graph([lambda q=q: wo_matmul(x, q, config=cfg) for q in qws]) * 1e6
        rows.append((us, bn, bk, w, ng, st, sk))
    rows.sort()
    for r in rows[:12]:
        print(f"  {r[0]:.1f} us  BN {r[1]} BK {r[2]} warps {r[3]} NG {r[4]} stages {r[5]} split {r[6]}")
    res.append({"N": n, "K": k, "stream_us": stream, "pipe": rows})
    print(f"({time.time()-t0:.0f}s)", flush=True)
    del qws
json.dump(res, open(os.path.join(sys.argv[1], "pipe_grid.json"), "w"))
