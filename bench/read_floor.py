"""How fast can a kernel merely *read* each layer's int4 bytes? The floor under the M = 1 kernels.

    python bench/read_floor.py --out bench/results        # on a GPU

For each of bench/kernel_bench.py's ten shapes, the int4-g128 storage bytes (codes + scales) are read
by a streaming kernel that does nothing else (a persistent grid, each program an equal contiguous
share, 16-byte loads, one int32 sum a program written out), timed exactly as the benchmark times
the kernels (a CUDA graph over copies totalling >= 256 MB, so every call reads DRAM). Its launch
shape (programs a SM, bytes a program a step, warps, eviction hint) is searched per size and the
best time kept: the floor. Sizes of 1-256 MB are swept the same way to show the curve.

In the same call, cuBLAS fp16 and the autotuned int4-g128 M = 1 kernels are timed on the same
shapes, so each kernel is reported against the floor of its own bytes, and the 3.0x / 80%-of-
bandwidth targets against what a kernel with no arithmetic at all reaches. Layers whose weight fits
in L2 are timed once more with one weight called back to back (L2-hot: no DRAM traffic after the
first call), for the kernel and for the read: what remains is the work on the SMs. Writes
read-floor-<gpu>.json and prints a line a shape and the medians.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import triton
import triton.language as tl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autoquant.formats import QuantFormat  # noqa: E402
from autoquant.hardware.measure import (  # noqa: E402
    gpu_identity, measure_bandwidth,
)
from autoquant.kernels.timing import time_in_graph, weight_clones, weight_copies  # noqa: E402
from autoquant.quant import dequantize, quantize  # noqa: E402
from autoquant.kernels import wo_matmul  # noqa: E402
from autoquant.kernels.wo_matmul import tuned_config  # noqa: E402
from bench import kernel_bench as _BENCH  # noqa: E402

SHAPES, check_output = _BENCH.SHAPES, _BENCH.check_output
SWEEP_MB = (1, 4, 16, 64, 256)
OCCUPANCY = (1, 2, 4, 8, 16)  # programs a SM
BLOCKS = (2048, 8192)  # int32 a program a step (8 or 32 KB in flight a program)
WARPS = (4, 8)
L2_HOT_MAX_BYTES = 40 * 2**20  # weights also timed resident in L2 (H100: 50 MB) up to this size


@triton.jit
def read_kernel(src, out, n, per_prog, BLOCK: tl.constexpr, EVICT_FIRST: tl.constexpr):
    """Sum (int32, wrapping) of this program's share src[pid * per_prog : ...] into out[pid]."""
    pid = tl.program_id(0)
    start = pid * per_prog
    end = tl.minimum(start + per_prog, n)
    offs = tl.arange(0, BLOCK)
    acc = tl.zeros((BLOCK,), dtype=tl.int32)
    for i in range(start, end, BLOCK):
        idx = i + offs
        if EVICT_FIRST:
            v = tl.load(src + idx, mask=idx < end, other=0, eviction_policy="evict_first")
        else:
            v = tl.load(src + idx, mask=idx < end, other=0)
        acc += v
    tl.store(out + pid, tl.sum(acc, axis=0))


def launch_read(src: torch.Tensor, out: torch.Tensor, programs: int, block: int, warps: int, evict: bool):
    n = src.numel()
    # shares a multiple of the step (and of 16, so Triton knows each share's start is 64-byte aligned)
    per = triton.cdiv(triton.cdiv(n, programs), block) * block
    programs = triton.cdiv(n, per)
    return lambda: read_kernel[(programs,)](src, out, n, per, BLOCK=block, EVICT_FIRST=evict, num_warps=warps)


def check_read(nbytes: int, sms: int) -> None:
    """The read kernel sums what it reads: checked against torch on an odd size before anything is timed."""
    n = nbytes // 4 + 13
    src = torch.randint(-1000, 1000, (n,), dtype=torch.int32, device="cuda")
    out = torch.zeros(sms * max(OCCUPANCY), dtype=torch.int32, device="cuda")
    for occ in OCCUPANCY:
        for block in BLOCKS:
            out.zero_()
            launch_read(src, out, sms * occ, block, 4, occ % 2 == 0)()
            if out.sum().item() != src.sum().item():
                raise SystemExit(f"WRONG RESULT read kernel occ={occ} block={block}")


def read_floor(nbytes: int, sms: int) -> dict:
    """Best time over the read kernel's launch shapes for nbytes (int32 words), and every shape's time."""
    n = nbytes // 4
    srcs = weight_clones(torch.randint(0, 2**30, (n,), dtype=torch.int32, device="cuda"), weight_copies(nbytes))
    out = torch.empty(sms * max(OCCUPANCY), dtype=torch.int32, device="cuda")
    tried = []
    for occ in OCCUPANCY:
        for block in BLOCKS:
            for warps in WARPS:
                for evict in (False, True):
                    secs = time_in_graph([launch_read(s, out, sms * occ, block, warps, evict) for s in srcs])
                    tried.append({"occ": occ, "block": block, "warps": warps, "evict_first": evict, "us": secs * 1e6})
    del srcs
    best = min(tried, key=lambda t: t["us"])
    return {"bytes": nbytes, "us": best["us"], "config": {k: v for k, v in best.items() if k != "us"}, "tried": tried}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="bench/results")
    ap.add_argument("--formats", default="int4-g128-sym,int4-g128-asym")
    args = ap.parse_args()
    t0 = time.time()
    ident = gpu_identity()
    sms = ident["sms"]
    bw = measure_bandwidth()
    print(f"{ident['name']}: copy bandwidth {bw / 1e12:.2f} TB/s (read+write)", flush=True)
    check_read(3 * 2**20, sms)
    formats = [QuantFormat.parse(f) for f in args.formats.split(",")]
    int4 = formats[0]

    sweep = []
    for mb in SWEEP_MB:
        r = read_floor(mb * 2**20, sms)
        r["frac_bw"] = r["bytes"] / (r["us"] * 1e-6) / bw
        sweep.append(r)
        print(f"read {mb:4d} MB: {r['us']:7.1f} us  {r['frac_bw']:.2f} of copy bandwidth  {r['config']}", flush=True)

    shapes = []
    for model, roles in SHAPES.items():
        for role, (n, k) in roles.items():
            torch.manual_seed(0)
            w16 = torch.randn(n, k, dtype=torch.float16, device="cuda") * 0.02
            x = torch.randn(1, k, dtype=torch.float16, device="cuda")
            act = (n + k) * 2
            w16s = weight_clones(w16, weight_copies(n * k * 2))
            fp16_us = time_in_graph([lambda w=w: F.linear(x, w) for w in w16s]) * 1e6
            del w16s
            floor = read_floor(int4.storage_bytes(n, k), sms)
            if floor["bytes"] <= L2_HOT_MAX_BYTES:
                src = torch.randint(0, 2**30, (floor["bytes"] // 4,), dtype=torch.int32, device="cuda")
                sink = torch.empty(sms * max(OCCUPANCY), dtype=torch.int32, device="cuda")
                c = floor["config"]
                read = launch_read(src, sink, sms * c["occ"], c["block"], c["warps"], c["evict_first"])
                floor["l2_hot_us"] = time_in_graph([read] * 32) * 1e6
                del src
            rec = {"model": model, "role": role, "N": n, "K": k, "fp16_us": fp16_us,
                   "fp16_frac_bw": (n * k * 2 + act) / (fp16_us * 1e-6) / bw,
                   "floor_bytes": floor["bytes"], "floor_us": floor["us"], "floor_config": floor["config"],
                   "floor_frac_bw": floor["bytes"] / (floor["us"] * 1e-6) / bw,
                   "floor_speedup": fp16_us / floor["us"], "floor_l2_hot_us": floor.get("l2_hot_us"),
                   "floor_tried": floor["tried"], "kernels": {}}
            for fmt in formats:
                qw = quantize(w16, fmt)
                y = wo_matmul(x, qw)  # autotunes
                check_output(y, x, dequantize(qw, torch.float32), f"{fmt} {model} {role}")
                cfg = tuned_config(1)
                qws = weight_clones(qw, weight_copies(fmt.storage_bytes(n, k)))
                us = time_in_graph([lambda q=q: wo_matmul(x, q) for q in qws]) * 1e6
                nbytes = fmt.storage_bytes(n, k) + act
                rec["kernels"][str(fmt)] = {"us": us, "speedup": fp16_us / us, "frac_bw": nbytes / (us * 1e-6) / bw,
                                            "of_floor": floor["us"] / us if fmt.storage_bytes(n, k) == floor["bytes"] else None,
                                            "config": str(cfg)}
                if fmt.storage_bytes(n, k) <= L2_HOT_MAX_BYTES:
                    # the same weight called back to back: after the first call it is read from L2,
                    # so what is left is the kernel's own work on the SMs
                    hot = time_in_graph([lambda: wo_matmul(x, qw)] * 32) * 1e6
                    rec["kernels"][str(fmt)].update(l2_hot_us=hot, l2_hot_of_dram=hot / us)
                del qw, qws
            shapes.append(rec)
            ks = "  ".join(f"{f} {v['us']:.1f} us ({v['speedup']:.2f}x"
                           + (f"; L2-hot {v['l2_hot_us']:.1f} us" if "l2_hot_us" in v else "") + ")"
                           for f, v in rec["kernels"].items())
            print(f"{model} {role} {n}x{k}: fp16 {fp16_us:.1f} us; read floor {floor['us']:.1f} us "
                  f"({rec['floor_frac_bw']:.2f} BW, {rec['floor_speedup']:.2f}x); {ks}  ({time.time() - t0:.0f}s)", flush=True)
            del w16
            torch.cuda.empty_cache()

    med = statistics.median
    summary = {
        "floor_median_frac_bw": med(r["floor_frac_bw"] for r in shapes),
        "floor_median_speedup": med(r["floor_speedup"] for r in shapes),
        "kernels": {f: {"median_speedup": med(r["kernels"][f]["speedup"] for r in shapes),
                        "median_frac_bw": med(r["kernels"][f]["frac_bw"] for r in shapes),
                        "median_of_floor": med(r["kernels"][f]["of_floor"] for r in shapes)
                        if all(r["kernels"][f]["of_floor"] is not None for r in shapes) else None,
                        "l2_hot_of_dram": [round(r["kernels"][f]["l2_hot_of_dram"], 3) for r in shapes
                                           if "l2_hot_of_dram" in r["kernels"][f]]}
                    for f in map(str, formats)},
    }
    print(json.dumps(summary, indent=1))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    slug = "".join(c if c.isalnum() else "-" for c in (ident.get("spec") or ident["name"]).lower())
    path = out / f"read-floor-{slug}.json"
    path.write_text(json.dumps({"gpu": ident, "bandwidth": bw, "date": time.strftime("%Y-%m-%d"),
                                "seconds": time.time() - t0, "summary": summary, "sweep": sweep, "shapes": shapes},
                               indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
