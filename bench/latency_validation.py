"""Validate plan latency: predicted (profile + rest allowance) vs a timed end-to-end forward.

    python bench/latency_validation.py --model bench/configs/llama-3-8b --out bench/results
        [--profile PATH]      use an existing profile instead of measuring one

Builds the model from its config with random weights on the GPU (timing needs no real
weights), measures a latency profile of its layer shapes (unless --profile), fits the
rest-of-model allowance on 16-bit forwards at calibration points, then, for several plans and
at points *other* than the calibration ones, compares `plan_latency` with the timed forward:
decode steps as CUDA graphs (static KV cache), prefill eagerly (last-position logits).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autoquant.formats import QuantFormat, all_formats  # noqa: E402
from autoquant.hardware.measure import build_model, run_profile, time_decode, time_prefill  # noqa: E402
from autoquant.hardware.profile import DEFAULT_BUCKETS, HardwareProfile, ProfileModel  # noqa: E402
from autoquant.hardware.latency import plan_latency  # noqa: E402
from autoquant.layers import get_module, set_module  # noqa: E402
from autoquant.memory import ModelShape  # noqa: E402
from autoquant.models import load_config, resolve_model  # noqa: E402
from autoquant.plan import Plan  # noqa: E402
from autoquant.kernels import QuantLinear  # noqa: E402

POINTS = [("decode", 1, 2048), ("decode", 4, 1024), ("decode", 16, 512), ("prefill", 1, 1024), ("prefill", 2, 512)]


def plans(shape: ModelShape) -> dict[str, Plan]:
    layers = list(shape.layers)
    mixed = {}
    for layer in layers:
        if layer.role in ("q", "k", "v", "o"):
            mixed[layer.name] = QuantFormat.parse("int8-pc-sym")
        elif layer.role in ("gate", "up"):
            mixed[layer.name] = QuantFormat.parse("int4-g128-asym")
        elif layer.role == "down":
            mixed[layer.name] = QuantFormat.parse("int4-g32-asym")
        else:
            mixed[layer.name] = QuantFormat("fp16")
    return {
        "fp16": Plan.uniform("fp16", layers),
        "int4-g128-asym": Plan.uniform("int4-g128-asym", layers),
        "int8-pc-sym": Plan.uniform("int8-pc-sym", layers),
        "mixed (attn int8-pc, mlp int4-g128/g32, lm_head fp16)": Plan(mixed),
    }


def swap_in(model, plan: Plan) -> dict:
    originals = {}
    for name, fmt in plan.formats.items():
        if fmt.is_float:
            continue
        mod = get_module(model, name)
        originals[name] = mod
        set_module(model, name, QuantLinear.from_linear(mod, fmt))
    return originals


def restore(model, originals: dict) -> None:
    for name, mod in originals.items():
        set_module(model, name, mod)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(ROOT / "bench/configs/llama-3-8b"))
    ap.add_argument("--profile", default=None)
    ap.add_argument("--formats", default=None, help="formats to profile (default: all)")
    ap.add_argument("--buckets", default=",".join(map(str, DEFAULT_BUCKETS)))
    ap.add_argument("--out", default="bench/results")
    ap.add_argument("--runtimes", default="graphs,eager", help="forward runtimes to validate (graphs, eager)")
    args = ap.parse_args()
    t0 = time.time()
    source = resolve_model(args.model)
    config = load_config(source)
    shape = ModelShape.from_source(source)
    name = Path(args.model).name
    model = build_model(config)
    print(f"built {name} ({shape.total_params / 1e9:.2f}B params, random weights) in {time.time() - t0:.0f}s", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.profile:
        prof = HardwareProfile.load(args.profile)
    else:
        fmts = [QuantFormat.parse(f) for f in args.formats.split(",")] if args.formats else all_formats()
        prof = run_profile(shape, name, fmts, [int(b) for b in args.buckets.split(",")], model=model,
                           progress=lambda what: print(f"  profiled {what} ({time.time() - t0:.0f}s)", flush=True))
        slug = "".join(c if c.isalnum() else "-" for c in (prof.gpu.get("spec") or prof.gpu_name).lower())
        path = prof.save(out / f"profile-{slug}-{name}.json")
        print(f"saved {path}; rest allowance {prof.rests}", flush=True)
    rows = []
    for label, plan in plans(shape).items():
        originals = swap_in(model, plan)
        for (phase, batch, context), runtime in ((pt, r) for pt in POINTS for r in args.runtimes.split(",")):
            pred = plan_latency(shape, plan, ProfileModel(prof, runtime=runtime), batch, context)
            if phase == "decode":
                meas, p = time_decode(model, batch, context, runtime=runtime), pred.decode_s
            else:
                meas, p = time_prefill(model, batch, context, runtime=runtime), pred.prefill_s
            rows.append({"plan": label, "runtime": runtime, "phase": phase, "batch": batch, "context": context,
                         "predicted_s": p,
                         "measured_s": meas, "error": (p - meas) / meas, "estimated": pred.estimated,
                         "linear_s": pred.linear_decode_s if phase == "decode" else pred.linear_prefill_s,
                         "rest_s": pred.rest_decode_s if phase == "decode" else pred.rest_prefill_s})
            r = rows[-1]
            print(f"{label:>52} {runtime:>6} {phase:>7} b={batch:<2} c={context:<5} predicted {p * 1e3:8.3f} ms "
                  f"measured {meas * 1e3:8.3f} ms  error {r['error'] * 100:+6.1f}%", flush=True)
        restore(model, originals)
        torch.cuda.empty_cache()
        summary = write(out, name, prof, rows, t0)  # after each plan
    print(f"latency validation: median |error| {summary['median_abs_error'] * 100:.1f}%, max {summary['max_abs_error'] * 100:.1f}%, "
          f"{summary['within_15pct']}/{summary['points']} within 15%  ({time.time() - t0:.0f}s)")


def write(out: Path, name: str, prof: HardwareProfile, rows: list, t0: float) -> dict:
    errs = [abs(r["error"]) for r in rows]
    summary = {"median_abs_error": statistics.median(errs), "max_abs_error": max(errs),
               "within_15pct": sum(e <= 0.15 for e in errs), "points": len(errs)}
    slug = "".join(c if c.isalnum() else "-" for c in (prof.gpu.get("spec") or prof.gpu_name).lower())
    (out / f"latency-validation-{slug}-{name}.json").write_text(json.dumps({
        "gpu": prof.gpu, "model": name, "profile_created": prof.created, "rests": {k: v.to_dict() for k, v in prof.rests.items()},
        "calibration_points": {r: prof.notes.get(f"rest_points_{r}") for r in prof.rests}, "summary": summary, "rows": rows,
        "method": "predicted: plan_latency from the profile (+ rest fitted on 16-bit forwards at other "
                  "contexts); measured: CUDA-graph forward of the random-weight model with QuantLinear layers",
        "seconds": time.time() - t0,
    }, indent=1) + "\n")
    return summary


if __name__ == "__main__":
    main()
