"""Compare kernel variants on the GPU before choosing the launcher's rules (one device call).

    python bench/kernel_variants.py --out bench/results        # on a GPU

* decode, M in {2, 4, 8, 16}: the CUDA-core word kernel with M rows vs the tl.dot kernel
  (tensor cores, y^T = W x^T) vs the tiled tl.dot kernel with x as the 16-row A operand;
* M = 1: the tuned word kernel (reference point for the rows above);
* M = 16, `dot_groups`: explicit tl.dot tiles whose step holds NG = 1, 2 or 4 sub-blocks;
* M = 16, `dot_tiles`: explicit tl.dot tiles, wgmma (4 or 8 warps) against mma.sync with 1-2 warps
  covering 64-128 rows each (x^T, the B operand, is then read once per warp for more rows);
* M = 2048: tiles of the dequantize pass before cuBLAS (run 1, results/kernel-variants-h100-run1.json,
  compared the whole W with row chunks through one reused buffer; chunks lost and were removed).

Same timing method as bench/kernel_bench.py (CUDA graph over weight copies that overflow L2, median
of 7 replays); each variant's output is checked against a float32 reference before timing.
Writes kernel-variants-<gpu>.json and prints one table a question.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import triton

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autoquant.formats import QuantFormat  # noqa: E402
from autoquant.hardware.measure import (  # noqa: E402
    gpu_identity, measure_bandwidth,
)
from autoquant.kernels.timing import time_in_graph, weight_clones, weight_copies  # noqa: E402
from autoquant.quant import dequantize, quantize  # noqa: E402
from autoquant.kernels import KernelConfig, wo_matmul  # noqa: E402
from bench import kernel_bench as _BENCH  # noqa: E402

W = sys.modules["autoquant.kernels.wo_matmul"]

SHAPES, check_output = _BENCH.SHAPES, _BENCH.check_output


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="bench/results")
    ap.add_argument("--parts", default="m1,small_m")
    ap.add_argument("--formats", default="int4-g128-sym,int4-g128-asym")
    ap.add_argument("--shapes", default="llama-3-8b:q/o,llama-3-8b:k/v,llama-3-8b:gate/up,llama-3-8b:down,"
                                        "llama-2-70b:q/o")
    ap.add_argument("--small-ms", default="2,4,8,16")
    args = ap.parse_args()
    parts = set(args.parts.split(","))
    fmts = [QuantFormat.parse(f) for f in args.formats.split(",")]
    shapes = []
    for s in args.shapes.split(","):
        model, role = s.split(":")
        shapes.append((model, role, *SHAPES[model][role]))
    t0 = time.time()
    ident = gpu_identity()
    bw = measure_bandwidth()
    print(f"{ident['name']}: copy bandwidth {bw / 1e12:.2f} TB/s", flush=True)
    recs: list[dict] = []

    def rec(**r) -> None:
        recs.append(r)
        print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()), flush=True)

    for model, role, n, k in shapes:
        torch.manual_seed(0)
        w16 = torch.randn(n, k, dtype=torch.float16, device="cuda") * 0.02
        base = dict(model=model, role=role, N=n, K=k)
        ms = sorted({1} | ({int(m) for m in args.small_ms.split(",")} if "small_m" in parts else set())
                    | ({2048} if "dequant" in parts else set()) | ({16} if parts & {"dot_tiles", "dot_groups"} else set()))
        xs = {m: torch.randn(m, k, dtype=torch.float16, device="cuda") for m in ms}
        w16s = weight_clones(w16, weight_copies(n * k * 2))
        fp16 = {m: time_in_graph([lambda w=w, m=m: F.linear(xs[m], w) for w in w16s]) for m in ms}
        del w16s
        for fmt in fmts:
            qw = quantize(w16, fmt)
            w_ref = dequantize(qw, torch.float32)
            nbytes = fmt.storage_bytes(n, k)
            qws = weight_clones(qw, weight_copies(nbytes))

            def timed(variant: str, m: int, call, **extra) -> None:
                x = xs[m]
                check_output(call(x, qw), x, w_ref, f"{variant} {fmt} {model} {role} M={m}")
                secs = time_in_graph([lambda q=q: call(x, q) for q in qws])
                rec(**base, format=str(fmt), M=m, variant=variant, us=secs * 1e6, fp16_us=fp16[m] * 1e6,
                    speedup=fp16[m] / secs, frac_bw=(nbytes + m * (n + k) * 2) / secs / bw,
                    config=str(W.tuned_config(m)) if "tuned" in variant else None, **extra)

            if "m1" in parts:
                timed("words tuned", 1, lambda x, q: wo_matmul(x, q))
            if "small_m" in parts:
                for m in [int(v) for v in args.small_ms.split(",")]:
                    rows_max = W.ROWS_MAX_M
                    W.ROWS_MAX_M = 16
                    timed("rows tuned", m, lambda x, q: wo_matmul(x, q))
                    W.ROWS_MAX_M = 1
                    timed("dot tuned", m, lambda x, q: wo_matmul(x, q))
                    W.ROWS_MAX_M = rows_max
                    if m == 16 and "x_as_a" in parts:  # x as the A operand (mma.sync m16), W^T as B: the large-M kernel, 16-row tiles
                        for bn, bk, warps, stages in [(64, 128, 4, 4), (32, 128, 4, 4), (64, 64, 4, 6), (128, 128, 8, 3)]:
                            cfg = KernelConfig(block_n=bn, block_k=bk, num_warps=warps, num_stages=stages, block_m=16)

                            def large(x, q, cfg=cfg):
                                y = torch.empty(x.shape[0], n, dtype=x.dtype, device=x.device)
                                z, szn, szg = W.zero_args(q.zeros, x.device, q.format.bits)
                                W._large_m_heur[(triton.cdiv(m, 16) * triton.cdiv(n, bn),)](
                                    x, q.codes, q.scales, z, y, y, x.shape[0], n, k, q.format.effective_group(k),
                                    x.stride(0), q.codes.stride(0), q.scales.stride(0), szn, szg, y.stride(0), 16,
                                    BITS=q.format.bits, HAS_BIAS=False, BLOCK_M=16, BLOCK_N=bn, BLOCK_K=bk,
                                    num_warps=cfg.num_warps, num_stages=cfg.num_stages)
                                return y

                            timed(f"x-as-A tl.dot {bn}x{bk} w{warps} s{stages}", m, large)
            if "dot_tiles" in parts:  # explicit tl.dot tiles at M = 16: wgmma (4+ warps) vs mma.sync (1-2 warps, 64-128 rows a warp)
                m = 16
                timed("dot tuned", m, lambda x, q: wo_matmul(x, q))
                for bn, bk, warps, stages in DOT_TILES:
                    if W.block_k_fits(bk, fmt.effective_group(k), fmt.bits):
                        tiles = triton.cdiv(n, bn)
                        split = max(1, min(W.MAX_SPLIT_K, triton.cdiv(2 * W._num_sms(), tiles), triton.cdiv(k, bk) // 2))
                        cfg = KernelConfig(block_n=bn, block_k=bk, num_warps=warps, num_stages=stages, split_k=split,
                                           block_m=16, kernel="dot")
                        timed(f"dot {bn}x{bk} w{warps} s{stages} split{split}", m,
                              lambda x, q, cfg=cfg: wo_matmul(x, q, config=cfg))
            if "dot_groups" in parts:  # M = 16 tl.dot steps of NG scale groups (bytes in flight a stage), explicit tiles
                m = 16
                timed("dot tuned", m, lambda x, q: wo_matmul(x, q))
                tune_args = dict(N=n, K=k, GROUP=fmt.effective_group(k), BITS=fmt.bits, M=m)
                for bn, bk, warps, stages, ng in GROUP_TILES:
                    if not W.block_k_fits(bk // ng, fmt.effective_group(k), fmt.bits):
                        continue
                    splits = [triton.Config({"BLOCK_N": bn, "BLOCK_K": bk, "SPLIT_K": sk, "NG": ng},
                                            num_warps=warps, num_stages=stages) for sk in W._SPLITS]
                    for c in W._prune_small(splits, tune_args):  # the splits the tuner would time
                        split = c.kwargs["SPLIT_K"]
                        cfg = KernelConfig(block_n=bn, block_k=bk, num_warps=warps, num_stages=stages, split_k=split,
                                           block_m=16, groups_per_step=ng, kernel="dot")
                        timed(f"dot {bn}x{bk} NG{ng} w{warps} s{stages} split{split}", m,
                              lambda x, q, cfg=cfg: wo_matmul(x, q, config=cfg), ng=ng)
            if "dequant" in parts:
                for bn, warps in [(64, 4), (128, 4), (128, 8), (256, 8), (32, 4), (32, 2)]:
                    W.DEQUANT_TILE = (bn, warps)
                    timed(f"dequant {bn} rows w{warps} + cuBLAS", 2048, lambda x, q: wo_matmul(x, q))
                W.DEQUANT_TILE = (64, 4)
            del qw, w_ref, qws
            torch.cuda.empty_cache()
        print(f"{model} {role} done ({time.time() - t0:.0f}s)", flush=True)
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        slug = "".join(c if c.isalnum() else "-" for c in (ident.get("spec") or ident["name"]).lower())
        (out / f"kernel-variants-{slug}.json").write_text(json.dumps(
            {"gpu": ident, "bandwidth": bw, "seconds": time.time() - t0, "records": recs}, indent=1) + "\n")

    print("\n| shape | format | M | variant | us | fp16 us | speedup | frac BW |")
    print("|---|---|---:|---|---:|---:|---:|---:|")
    for r in recs:
        print(f"| {r['model']} {r['role']} | {r['format']} | {r['M']} | {r['variant']} | {r['us']:.1f} | "
              f"{r['fp16_us']:.1f} | {r['speedup']:.2f}x | {r['frac_bw']:.2f} |")


DOT_TILES = [  # (BLOCK_N, BLOCK_K, warps, stages)
    (128, 128, 4, 4), (256, 128, 8, 3), (128, 128, 2, 4), (256, 128, 2, 3), (256, 64, 2, 4),
    (128, 128, 1, 4), (64, 128, 1, 4), (128, 64, 1, 6),
    (64, 128, 1, 3), (64, 128, 1, 6), (64, 128, 1, 8), (128, 128, 2, 6), (64, 64, 1, 8), (32, 128, 1, 6),
    (64, 128, 2, 4), (128, 64, 2, 6),
    (64, 128, 2, 3), (64, 128, 2, 6), (32, 128, 1, 4), (32, 128, 2, 4), (16, 128, 1, 6), (64, 64, 2, 6),
]

# (BLOCK_N, BLOCK_K, warps, stages, NG): BLOCK_K / NG inputs a scale group (int4-g128: the 64 x 512
# tiles are four whole groups a step; they lost on every shape, results/kernel-variants-h100-dot-groups*.json)
GROUP_TILES = [
    (64, 128, 2, 3, 1), (64, 128, 2, 4, 1), (64, 256, 2, 2, 2), (64, 256, 2, 3, 2), (64, 256, 2, 4, 2),
    (32, 256, 1, 4, 2), (64, 512, 2, 2, 4), (64, 512, 2, 3, 4), (32, 512, 1, 3, 4), (32, 512, 1, 4, 4),
]


if __name__ == "__main__":
    main()
