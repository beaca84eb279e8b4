"""Sensitivity profile time against the number of Ray workers, from a fresh cache each time.

    # here (CPU): the embedded SmolLM2, default space, default measured sample
    python bench/profile_scaling.py --workers 1,2 --out bench/results/profile-scaling-cpu.json

    # device machine (GPU): random weights from a config dir (config.json + tokenizer files),
    # every pair measured
    python bench/profile_scaling.py --random-from DIR --workers 1,2,4 --measure all \
        --out $OUT/profile-scaling-h100.json

Each run profiles from an empty cache (so every phase runs), then the first configuration
is run once more to time the cached re-run. Phase times come from the table (`timings`);
the machine's load average is recorded beside them because the CPU box is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import torch  # noqa: E402

from autoquant.data import calibration_text  # noqa: E402
from autoquant.models import resolve_model  # noqa: E402
from autoquant.sensitivity import profile_sensitivity  # noqa: E402
from autoquant.sensitivity.profile import DEFAULT_CALIB_TOKENS, DEFAULT_MEASURE_TOKENS, DEFAULT_SAMPLE  # noqa: E402
from autoquant.space import load_space  # noqa: E402


def random_model_dir(config_dir: str, seed: int = 0) -> str:
    """A model directory with the config and tokenizer of `config_dir` and random weights."""
    import shutil

    from transformers import AutoConfig, AutoModelForCausalLM

    out = Path(tempfile.mkdtemp(prefix="aq-random-")) / Path(config_dir).name
    config = AutoConfig.from_pretrained(config_dir)
    torch.manual_seed(seed)
    dtype = getattr(config, "torch_dtype", None) or torch.bfloat16  # fp32 would double an 8B model's 16 GB
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):  # random init of 8B params: seconds on a GPU
        AutoModelForCausalLM.from_config(config, dtype=dtype).save_pretrained(out)
    for f in Path(config_dir).iterdir():
        if f.name.startswith(("tokenizer", "special_tokens", "chat_template", "vocab", "merges")):
            shutil.copy(f, out / f.name)
    return str(out)


def normalisation_agreement(table, cache_dir: str) -> dict:
    """Spearman of each proxy normalisation against the measured KL of the same pairs.

    The cache keeps every normalisation's ingredients (ProxyParts), so this costs nothing.
    """
    from scipy.stats import spearmanr

    from autoquant.sensitivity.proxy import NORMALISATIONS, ProxyParts

    (path,) = Path(cache_dir).glob("*.jsonl")
    parts = {}
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        if rec.get("kind") == "proxy":
            parts[(rec["layer"], rec["format"])] = rec
    measured = table.measured_entries()
    out = {}
    for norm in NORMALISATIONS:

        def value(e):
            r = parts[(e.layer, e.format)]
            return ProxyParts(r["output_error"], r["output_energy"], r["fisher_error"]).value(norm)

        overall = float(spearmanr([value(e) for e in measured], [e.kl for e in measured]).statistic)
        by_format = {}
        for fmt in table.formats:
            group = [e for e in measured if e.format == fmt]
            if len(group) >= 3:
                by_format[fmt] = float(spearmanr([value(e) for e in group], [e.kl for e in group]).statistic)
        out[norm] = {"overall": overall, "by_format": by_format}
    return out


def machine() -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
            "torch": torch.__version__}
    if torch.cuda.is_available():
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    import ray

    info["ray"] = ray.__version__
    return info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="as autoquant --model (default: the embedded SmolLM2)")
    ap.add_argument("--random-from", default=None, help="config + tokenizer dir: profile a random-weight model of it")
    ap.add_argument("--space", default=None)
    ap.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    ap.add_argument("--measure", default="auto", choices=("auto", "all", "sample", "none"))
    ap.add_argument("--sample", type=int, default=DEFAULT_SAMPLE)
    ap.add_argument("--calib-tokens", type=int, default=DEFAULT_CALIB_TOKENS)
    ap.add_argument("--measure-tokens", type=int, default=DEFAULT_MEASURE_TOKENS)
    ap.add_argument("--out", required=True)
    ap.add_argument("--cache-root", default=None, help="where the fresh caches go (default: a temp dir); "
                                                       "their JSONL grows pair by pair, so a cut-off run still shows its rate")
    args = ap.parse_args()

    if args.random_from:
        model_path = random_model_dir(args.random_from)
        model_desc = f"random weights (seed 0) with the config of {Path(args.random_from).name}"
    else:
        model_path = args.model
        model_desc = resolve_model(model_path).display
    source = resolve_model(model_path)
    space = load_space(args.space)
    calib = calibration_text()
    settings = dict(calib_tokens=args.calib_tokens, measure=args.measure, measure_tokens=args.measure_tokens,
                    sample_size=args.sample)
    runs: list[dict] = []
    result = {
        "bench": "profile_scaling", "date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine(),
        "model": model_desc, "space": space.name, "settings": settings, "runs": runs,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    for i, workers in enumerate(int(w) for w in args.workers.split(",")):
        cache = tempfile.mkdtemp(prefix="aq-profile-cache-", dir=args.cache_root)
        load_before = os.getloadavg()
        t = time.perf_counter()
        table = profile_sensitivity(source, space, calib, workers=workers, progress=False, cache_dir=cache, **settings)
        wall = time.perf_counter() - t
        run = {
            "workers": workers, "wall_s": round(wall, 2), "phases_s": table.timings, "executor": table.executor,
            "pairs": len(table.entries), "measured": len(table.measured_entries()),
            "spearman": table.spearman, "spearman_by_format": table.spearman_by_format,
            "proxy_to_kl": table.proxy_to_kl, "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        }
        if len(table.measured_entries()) >= 3:
            run["spearman_by_normalisation"] = normalisation_agreement(table, cache)
        if i == 0:
            t = time.perf_counter()
            profile_sensitivity(source, space, calib, workers=workers, progress=False, cache_dir=cache, **settings)
            run["cached_rerun_s"] = round(time.perf_counter() - t, 2)
        runs.append(run)
        print(json.dumps(run), flush=True)
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")  # after every run: a timeout keeps what finished
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
