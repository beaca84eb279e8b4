"""Benchmark the weight-only kernels against cuBLAS fp16, torch's int4 kernel and the roofline.

    python bench/kernel_bench.py --out bench/results            # on a GPU

Shapes: the linear layers of Llama-3-8B and Llama-2-70B (q/o, k/v, gate/up, down, lm_head),
M (tokens) in {1, 4, 16, 64, 256, 2048}. Every timing is per call inside a CUDA graph that runs
the kernel back to back over copies of the weight totalling >= 256 MB, so each call reads its
weight from DRAM (as a decode step does) and no CPU launch overhead is counted (as in a served
model's CUDA graph); median of 7 replays. Each kernel output is checked against a float32
reference before it is timed. Writes kernels-<gpu>.json (one record
per kernel, format, shape, M) and prints the medians against the issue's targets.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autoquant.formats import QuantFormat  # noqa: E402
from autoquant.hardware.measure import (  # noqa: E402
    gpu_identity, measure_bandwidth, measure_fp16_flops,
)
from autoquant.kernels.timing import time_in_graph, weight_clones, weight_copies  # noqa: E402
from autoquant.quant import dequantize, quantize  # noqa: E402
from autoquant.kernels import DEFAULT_STATE, SMALL_M_MAX, decode_pdl, wo_matmul  # noqa: E402

SHAPES = {  # role -> (out N, in K)
    "llama-3-8b": {"q/o": (4096, 4096), "k/v": (1024, 4096), "gate/up": (14336, 4096), "down": (4096, 14336),
                   "lm_head": (128256, 4096)},
    "llama-2-70b": {"q/o": (8192, 8192), "k/v": (1024, 8192), "gate/up": (28672, 8192), "down": (8192, 28672),
                    "lm_head": (32000, 8192)},
}
MS = (1, 4, 16, 64, 256, 2048)
FORMATS = ("int4-g128-sym", "int4-g128-asym", "int8-pc-sym", "int4-g32-asym")
TARGETS = [  # (format, M, metric, threshold): issue 28's raised targets (the H100 round's were 3.0/0.80/2.5/1.8/0.9)
    ("int4-g128", 1, "speedup", 3.5), ("int4-g128", 1, "frac_bw", 0.85), ("int4-g128", 16, "speedup", 3.2),
    ("int8-pc-sym", 1, "speedup", 1.9), ("int4-g128", 2048, "speedup", 0.95),
]
TARGET_MIN_WEIGHTS = 1 << 24  # targets are medians over the shapes of at least 16M weights (k/v are smaller)


def bench(make, weights) -> float:
    """Seconds per call in a CUDA graph over the weight copies (see time_in_graph)."""
    return time_in_graph([make(w) for w in weights])


def check_output(y: torch.Tensor, x: torch.Tensor, w_ref: torch.Tensor, what: str) -> float:
    """Relative error of y against x @ w_ref^T in fp32; a wrong result stops the benchmark."""
    ref = x.float() @ w_ref.t()
    rel = ((y.float() - ref).norm() / ref.norm()).item()
    if not rel < 3e-3:
        raise SystemExit(f"WRONG RESULT {what}: relative error {rel:.2e}")
    return rel


def torch_int4(w16: torch.Tensor, group: int = 128):
    """Copies of a weight for torch.ops.aten._weight_int4pack_mm (tinygemm, bf16 activations)
    and a maker of calls, or None and the reason the op is missing from this build."""
    n, k = w16.shape
    try:
        codes = torch.randint(0, 16, (n, k), dtype=torch.int32, device="cuda")
        packed = (codes[:, ::2] << 4 | codes[:, 1::2]).to(torch.uint8)
        w = torch.ops.aten._convert_weight_to_int4pack(packed, 8)
        sz = torch.randn(k // group, n, 2, dtype=torch.bfloat16, device="cuda") * 0.01
        x0 = torch.randn(1, k, dtype=torch.bfloat16, device="cuda")
        torch.ops.aten._weight_int4pack_mm(x0, w, group, sz)
        n_copies = weight_copies(w.numel() * w.element_size())
        weights = [(w, sz)] + [(w.clone(), sz.clone()) for _ in range(n_copies - 1)]
        return weights, None
    except Exception as e:  # the op or its CUDA kernel is absent from this build
        return None, f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"


def report(path: str) -> None:
    """Markdown tables of a results file (what bench/README.md shows)."""
    d = json.loads(Path(path).read_text())
    recs, summ = d["records"], d["summary"]
    print(f"{d['gpu']['name']}, driver {d['gpu']['driver']}, torch {d['gpu']['torch']}, triton {d['gpu']['triton']}; "
          f"measured copy bandwidth {d['bandwidth'] / 1e12:.2f} TB/s, fp16 matmul {d['fp16_flops'] / 1e12:.0f} TFLOP/s\n")
    print("Medians over the 10 shapes (speedup = cuBLAS fp16 time / kernel time):\n")
    ms = sorted({r["M"] for r in recs})
    kinds = sorted({(r["kernel"], r["format"]) for r in recs if r["kernel"] != "cublas"}, key=lambda t: (t[0] != "autoquant", t[1]))
    print("| kernel | format | " + " | ".join(f"M={m}" for m in ms) + " |")
    print("|---|---|" + "---:|" * len(ms))
    for kernel, fmt in kinds:
        cells = []
        for m in ms:
            row = [r for r in summ["rows"] if r["kernel"] == kernel and r["format"] == fmt and r["M"] == m]
            cell = f"{row[0]['median_speedup']:.2f}x ({row[0]['median_frac_bw']:.2f} BW)" if row else ""
            if row and "median_speedup_no_pdl" in row[0]:
                cell += f"; no PDL {row[0]['median_speedup_no_pdl']:.2f}x ({row[0]['median_frac_bw_no_pdl']:.2f})"
            cells.append(cell)
        print(f"| {kernel} | {fmt} | " + " | ".join(cells) + " |")
    fmts = ["fp16", "int4-g128-sym", "int4-g128-asym", "int8-pc-sym", "int4-g128 (tinygemm, bf16)"]
    for m in (1, 16):
        print(f"\nPer shape, M = {m} (time, speedup vs fp16, fraction of measured bandwidth; in brackets the "
              "time without PDL" + ("; * launched with PDL" if m > 1 else "") + "):\n")
        print("| model | layer | N x K | " + " | ".join(fmts) + " |")
        print("|---|---|---|" + "---:|" * len(fmts))
        for model, role, n, k in dict.fromkeys((r["model"], r["role"], r["N"], r["K"]) for r in recs):
            cells = []
            for f in fmts:
                r = [r for r in recs if r["model"] == model and r["role"] == role and r["format"] == f and r["M"] == m]
                no_pdl = f" [{r[0]['no_pdl_ms'] * 1e3:.1f}]" if r and "no_pdl_ms" in r[0] else ""
                star = "*" if r and m > 1 and r[0].get("pdl") else ""
                cells.append(f"{r[0]['ms'] * 1e3:.1f} us{star}{no_pdl}, {r[0]['speedup']:.2f}x, {r[0]['frac_bw']:.2f}"
                             if r else "")
            print(f"| {model} | {role} | {n} x {k} | " + " | ".join(cells) + " |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--report", default=None, help="print markdown tables of a results JSON and exit")
    ap.add_argument("--out", default="bench/results")
    ap.add_argument("--models", default=",".join(SHAPES))
    ap.add_argument("--ms", default=",".join(map(str, MS)))
    ap.add_argument("--formats", default=",".join(FORMATS))
    args = ap.parse_args()
    if args.report:
        report(args.report)
        return
    ms = [int(m) for m in args.ms.split(",")]
    formats = [QuantFormat.parse(f) for f in args.formats.split(",")]
    t_start = time.time()
    ident = gpu_identity()
    bw, flops = measure_bandwidth(), measure_fp16_flops()
    print(f"{ident['name']}: copy bandwidth {bw / 1e12:.2f} TB/s (read+write), fp16 matmul {flops / 1e12:.0f} TFLOP/s", flush=True)
    records, notes = [], {}
    for model in args.models.split(","):
        for role, (n, k) in SHAPES[model].items():
            torch.manual_seed(0)
            w16 = torch.randn(n, k, dtype=torch.float16, device="cuda") * 0.02
            xs = {m: torch.randn(m, k, dtype=torch.float16, device="cuda") for m in ms}
            w16s = weight_clones(w16, weight_copies(n * k * 2))
            fp16_s = {m: bench(lambda w, m=m: (lambda: F.linear(xs[m], w)), w16s) for m in ms}
            del w16s
            base = dict(model=model, role=role, N=n, K=k)

            def record(kernel: str, fmt: str, m: int, secs: float, nbytes: int, **extra) -> None:
                records.append({**base, "kernel": kernel, "format": fmt, "M": m, "ms": secs * 1e3,
                                "fp16_ms": fp16_s[m] * 1e3, "speedup": fp16_s[m] / secs,
                                "gbps": nbytes / secs / 1e9, "frac_bw": nbytes / secs / bw,
                                "tflops": 2 * m * n * k / secs / 1e12, **extra})

            act = lambda m: m * (n + k) * 2  # noqa: E731  x read + y written
            for m in ms:
                record("cublas", "fp16", m, fp16_s[m], n * k * 2 + act(m))
            int4_w, why = torch_int4(w16)
            if int4_w is None:
                notes["torch_int4"] = why
            else:
                for m in ms:
                    x = xs[m].to(torch.bfloat16)
                    secs = bench(lambda wz, x=x: (lambda: torch.ops.aten._weight_int4pack_mm(x, wz[0], 128, wz[1])), int4_w)
                    record("torch-int4", "int4-g128 (tinygemm, bf16)", m, secs,
                           QuantFormat.parse("int4-g128-asym").storage_bytes(n, k) + act(m))
                del int4_w
            quant = {}
            for fmt in formats:
                qw = quantize(w16, fmt)
                quant[fmt] = (qw, dequantize(qw, torch.float32), weight_clones(qw, weight_copies(fmt.storage_bytes(n, k))))
            # token counts outermost: every format's M = 1 runs before the large-M GEMMs, whose
            # power draw slowed the decode calls timed right after them (seen on the H100)
            for m in ms:
                for fmt in formats:
                    qw, w_ref, qws = quant[fmt]
                    x = xs[m]
                    y = wo_matmul(x, qw)  # autotunes this (shape, format, M) on first use
                    rel = check_output(y, x, w_ref, f"{fmt} {model} {role} M={m}")
                    call = lambda q, x=x: (lambda: wo_matmul(x, q))
                    secs = bench(call, qws)
                    cfg, pdl_used = DEFAULT_STATE.tuned_config(m), DEFAULT_STATE.last_decode_pdl()  # as in the graph
                    nbytes = fmt.storage_bytes(n, k) + act(m)
                    extra = {}
                    if m <= SMALL_M_MAX:  # decode kernels chain with PDL in the graph; also time them without
                        extra["pdl"] = pdl_used
                        times = {True: [secs], False: []}  # (alternating, two of each)
                        for pdl in (False, True, False):
                            with decode_pdl(pdl):
                                times[pdl].append(bench(call, qws))
                        secs, s0 = statistics.mean(times[True]), statistics.mean(times[False])
                        extra.update(no_pdl_ms=s0 * 1e3, no_pdl_speedup=fp16_s[m] / s0, no_pdl_frac_bw=nbytes / s0 / bw)
                    record("autoquant", str(fmt), m, secs, nbytes, rel_err=rel,
                           config=str(cfg) if cfg is not None else None, **extra)
            del quant
            print(f"{model} {role} {n}x{k} done ({time.time() - t_start:.0f}s)", flush=True)
            del w16, xs
            torch.cuda.empty_cache()
            summary = write(args.out, ident, bw, flops, t_start, notes, records)  # after each shape
    print_summary(summary)


def write(out_dir: str, ident: dict, bw: float, flops: float, t_start: float, notes: dict, records: list) -> dict:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    slug = "".join(c if c.isalnum() else "-" for c in (ident.get("spec") or ident["name"]).lower())
    summary = summarize(records)
    payload = {"gpu": ident, "bandwidth": bw, "fp16_flops": flops, "seconds": time.time() - t_start,
               "method": "per call in a CUDA graph over weight copies totalling >= 256 MB (DRAM-cold weights, "
                         "no launch overhead), median of 7 replays; fp16 activations (torch int4: bf16, its "
                         "only dtype); bytes = weight storage + x + y. The decode word kernel (M <= 2, with at least "
                         "3 programs a SM) launches with programmatic dependent launch in the graph: each call "
                         "overlaps the previous one's tail, as consecutive quantized layers do in a captured decode "
                         "step (cuBLAS runs without it); the tl.dot kernel (2 < M <= 16) with the config and PDL "
                         "setting its eager launch timed fastest in a graph among the tuner's best (`pdl` field); "
                         "M <= 16: mean of two graphs with PDL and two without (no_pdl_* fields: the tuner's "
                         "config, no PDL), alternating; all formats' M = 1 before any larger M of a shape",
               "notes": notes, "summary": summary, "records": records}
    (out / f"kernels-{slug}.json").write_text(json.dumps(payload, indent=1) + "\n")
    return summary


def _median(records, kernel, fmt_prefix, m, key):
    vals = [r[key] for r in records
            if r["kernel"] == kernel and r["format"].startswith(fmt_prefix) and r["M"] == m and key in r]
    return statistics.median(vals) if vals else None


def summarize(records) -> dict:
    rows = []
    kinds = sorted({(r["kernel"], r["format"]) for r in records if r["kernel"] != "cublas"})
    for kernel, fmt in kinds:
        for m in sorted({r["M"] for r in records}):
            sp = _median(records, kernel, fmt, m, "speedup")
            if sp is None:
                continue
            row = {"kernel": kernel, "format": fmt, "M": m, "median_speedup": sp,
                   "median_frac_bw": _median(records, kernel, fmt, m, "frac_bw"),
                   "median_ms": _median(records, kernel, fmt, m, "ms")}
            sp0 = _median(records, kernel, fmt, m, "no_pdl_speedup")
            if sp0 is not None:
                row["median_speedup_no_pdl"] = sp0
                row["median_frac_bw_no_pdl"] = _median(records, kernel, fmt, m, "no_pdl_frac_bw")
            rows.append(row)
    targets = []
    big = [r for r in records if r["N"] * r["K"] >= TARGET_MIN_WEIGHTS]
    for fmt, m, what, thr in TARGETS:
        for f in sorted({r["format"] for r in big if r["kernel"] == "autoquant" and r["format"].startswith(fmt)}):
            key = "speedup" if what == "speedup" else "frac_bw"
            v = _median(big, "autoquant", f, m, key)
            if v is not None:
                t = {"format": f, "M": m, "metric": what, "target": thr, "value": v, "met": v >= thr,
                     "shapes": len({(r["model"], r["role"]) for r in big})}
                v0 = _median(big, "autoquant", f, m, "no_pdl_" + key)
                if v0 is not None:
                    t.update(value_no_pdl=v0, met_no_pdl=v0 >= thr)
                targets.append(t)
    vs_int4 = []
    for m in (1, 4, 16):
        for f in sorted({r["format"] for r in records if r["kernel"] == "autoquant" and r["format"].startswith("int4-g128")}):
            ours = {(r["model"], r["role"]): r["ms"] for r in records if r["format"] == f and r["M"] == m}
            theirs = {(r["model"], r["role"]): r["ms"] for r in records if r["kernel"] == "torch-int4" and r["M"] == m}
            common = [k for k in ours if k in theirs]
            if common:
                ratio = statistics.median(theirs[c] / ours[c] for c in common)
                vs_int4.append({"format": f, "M": m, "median_speedup_vs_torch_int4": ratio, "met": ratio > 1.0})
    return {"rows": rows, "targets": targets, "vs_torch_int4": vs_int4}


def print_summary(summary: dict) -> None:
    print("\n| kernel | format | M | median speedup vs fp16 | median frac of measured BW | median ms |")
    print("|---|---|---:|---:|---:|---:|")
    for r in summary["rows"]:
        print(f"| {r['kernel']} | {r['format']} | {r['M']} | {r['median_speedup']:.2f}x | {r['median_frac_bw']:.2f} | {r['median_ms']:.4f} |")
    print("\ntargets:")
    for t in summary["targets"]:
        no_pdl = f"; without PDL {t['value_no_pdl']:.2f} {'MET' if t['met_no_pdl'] else 'MISSED'}" if "value_no_pdl" in t else ""
        print(f"  {t['format']:>16} M={t['M']:<5} {t['metric']:>8} {t['value']:.2f} (target {t['target']}) "
              f"{'MET' if t['met'] else 'MISSED'}{no_pdl}")
    for t in summary["vs_torch_int4"]:
        print(f"  {t['format']:>16} M={t['M']:<5} vs torch int4 {t['median_speedup_vs_torch_int4']:.2f}x {'MET' if t['met'] else 'MISSED'}")


if __name__ == "__main__":
    main()
