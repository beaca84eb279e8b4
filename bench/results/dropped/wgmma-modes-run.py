import sys, torch, torch.nn.functional as F
sys.path.insert(0, "bench/results/dropped")
from autoquant.formats import QuantFormat
from autoquant.hardware.measure import time_in_graph, weight_clones, weight_copies
from autoquant.quant import quantize
import wgmma_pipelined as W
for (n, k) in [(4096, 4096), (8192, 8192)]:
    w16 = torch.randn(n, k, dtype=torch.float16, device="cuda") * 0.02
    x = torch.randn(2048, k, dtype=torch.float16, device="cuda")
    fp16 = time_in_graph([lambda w=w: F.linear(x, w) for w in weight_clones(w16, weight_copies(n * k * 2))])
    qw = quantize(w16, QuantFormat.parse("int4-g128-sym"))
    qws = weight_clones(qw, weight_copies(n * k // 2))
    y = torch.empty(2048, n, dtype=torch.float16, device="cuda")
    for cfg in [((128, 256, 64), 6, 8), ((256, 128, 64), 4, 8)]:
        res = []
        for mode in (0, 1, 2):
            t = time_in_graph([lambda q=q: W.dequant_wgmma_matmul(x, q.codes, q.scales, None, 0, 1, 128, None, y, block=cfg[0], stages=cfg[1], num_warps=cfg[2], mode=mode) for q in qws])
            res.append(f"mode{mode} {fp16 / t:.3f}x ({2*2048*n*k/t/1e12:.0f} TF)")
        print(n, k, cfg, f"fp16 {2*2048*n*k/fp16/1e12:.0f} TF;", "; ".join(res), flush=True)
