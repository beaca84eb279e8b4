"""Merge latency profiles of one GPU and model timed in separate runs (e.g. formats split across
calls that each must end within a time limit) into one file.

    python bench/merge_profiles.py OUT.json FIRST.json SECOND.json ...

The first profile gives the GPU identity, bandwidth, FLOP/s and rest-of-model fit; later ones add
the formats it lacks (a format in several keeps the first one's times). Buckets and model must
match. The merged notes name the parts and how far their common formats (fp16, always timed)
differ, so a reader sees how repeatable the runs were.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from autoquant.hardware.profile import HardwareProfile


def merge(parts: list[tuple[str, HardwareProfile]]) -> HardwareProfile:
    (_, base), rest = parts[0], parts[1:]
    layers = {k: dict(v) for k, v in base.layers.items()}
    parts_note = [{"file": Path(p).name, "created": h.created,
                   "formats": sorted({f for v in h.layers.values() for f in v}),
                   "bandwidth": h.bandwidth, "fp16_flops": h.fp16_flops} for p, h in parts]
    for i, (path, prof) in enumerate(rest, 1):
        if prof.buckets != base.buckets or prof.model != base.model or prof.gpu_name != base.gpu_name:
            raise SystemExit(f"{path}: buckets, model or GPU differ from {parts[0][0]}")
        ratios = []
        for key, per_fmt in prof.layers.items():
            for fmt, times in per_fmt.items():
                if fmt in layers.get(key, {}):
                    ratios += [b / a for a, b in zip(layers[key][fmt], times)]
                else:
                    layers.setdefault(key, {})[fmt] = times
        if ratios:
            parts_note[i]["common_formats_time_ratio"] = {
                "median": statistics.median(ratios), "min": min(ratios), "max": max(ratios)}
    notes = dict(base.notes, merged_from=parts_note)
    return HardwareProfile(gpu=base.gpu, created=base.created, model=base.model, bandwidth=base.bandwidth,
                           fp16_flops=base.fp16_flops, buckets=base.buckets, layers=layers, rests=base.rests, notes=notes)


def main() -> None:
    if len(sys.argv) < 4:
        raise SystemExit(__doc__)
    out, *paths = sys.argv[1:]
    merged = merge([(p, HardwareProfile.load(p)) for p in paths])
    merged.save(out)
    for p in merged.notes["merged_from"]:
        print(p["file"], len(p["formats"]), "formats", p.get("common_formats_time_ratio", ""))
    print(f"saved {out}: {sum(len(v) for v in merged.layers.values())} (shape, format) entries")


if __name__ == "__main__":
    main()
