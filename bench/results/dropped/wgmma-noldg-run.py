import sys, torch, torch.nn.functional as F
sys.path.insert(0, "bench/results/dropped")
from autoquant.formats import QuantFormat
from autoquant.hardware.measure import time_in_graph, weight_clones, weight_copies
from autoquant.quant import quantize
import wgmma_dequant as W
for (n, k) in [(4096, 4096), (14336, 4096), (8192, 8192)]:
    w16 = torch.randn(n, k, dtype=torch.float16, device="cuda") * 0.02
    x = torch.randn(2048, k, dtype=torch.float16, device="cuda")
    fp16 = time_in_graph([lambda w=w: F.linear(x, w) for w in weight_clones(w16, weight_copies(n * k * 2))])
    qw = quantize(w16, QuantFormat.parse("int4-g128-sym"))
    qws = weight_clones(qw, weight_copies(n * k // 2))
    y = torch.empty(2048, n, dtype=torch.float16, device="cuda")
    for blk, wb in [((128, 256, 64), 3), ((256, 128, 64), 2)]:
        res = []
        for noldg in (False, True):
            t = time_in_graph([lambda q=q: W.dequant_wgmma_matmul(x, q.codes, q.scales, None, 0, 1, 128, None, y, block=blk, stages=4, wbuf=wb, noldg=noldg) for q in qws])
            res.append(f"noldg={noldg} {fp16 / t:.3f}x")
        print(n, k, blk, wb, "; ".join(res), flush=True)
