"""Peak memory of `autoquant export` (compressed-tensors, streamed) on a random-weight model.

Builds a model from a config directory with random bf16 weights written straight to safetensors
shards (the float model is never built), then runs `autoquant export` on it in a child process
and records the child's peak resident memory (getrusage). The bound it checks: about
max_shard_size + two copies of the largest 16-bit tensor + one quantization chunk, whatever the
model's size.

    python bench/export_memory.py --config bench/configs/llama-3-8b --work /tmp/export-bench \
        --plan int4-g128-sym --max-shard-size 2GB --out bench/results/export-memory.json
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch


def build_random(config_dir: Path, out: Path, layers: int | None, vocab: int | None) -> dict:
    from transformers import AutoConfig

    from autoquant.export.streaming import ShardWriter
    from autoquant.models import build_meta_model

    config = AutoConfig.from_pretrained(config_dir)
    if layers is not None:
        config.num_hidden_layers = layers
    if vocab is not None:
        config.vocab_size = vocab
    meta = build_meta_model(config)
    out.mkdir(parents=True)
    config.dtype = torch.bfloat16
    config.save_pretrained(out)
    writer = ShardWriter(out, 2 * 10**9)
    gen = torch.Generator().manual_seed(0)
    params, largest = 0, 0
    for name, t in meta.state_dict().items():
        if name == "lm_head.weight" and getattr(config, "tie_word_embeddings", False):
            continue
        x = torch.randn(t.shape, generator=gen, dtype=torch.bfloat16) * 0.02
        writer.add(name, x)
        params += x.numel()
        largest = max(largest, x.numel() * 2)
    writer.close()
    return {"params": params, "bf16_bytes": 2 * params, "largest_tensor_bytes": largest}


def _rss_split(pid: int) -> dict[str, int]:
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("RssAnon", "RssFile"):
                out[key] = int(rest.split()[0]) * 1024  # kB
    except (FileNotFoundError, ProcessLookupError, ValueError):
        pass
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True, help="directory with config.json")
    ap.add_argument("--layers", type=int, default=None, help="override num_hidden_layers (a smaller model)")
    ap.add_argument("--vocab", type=int, default=None, help="override vocab_size (a smaller model)")
    ap.add_argument("--work", required=True, help="scratch directory (model + export; removed after)")
    ap.add_argument("--plan", default="int4-g128-sym")
    ap.add_argument("--engine", default="vllm")
    ap.add_argument("--max-shard-size", default="2GB")
    ap.add_argument("--out", default=None, help="JSON file to write the result to")
    args = ap.parse_args()
    work = Path(args.work)
    if work.exists():
        shutil.rmtree(work)
    t = time.perf_counter()
    model = build_random(Path(args.config), work / "model", args.layers, args.vocab)
    model["build_s"] = round(time.perf_counter() - t, 1)
    cmd = [sys.executable, "-m", "autoquant", "export", "--plan", args.plan, "--model", str(work / "model"),
           "--out", str(work / "export"), "--engine", args.engine, "--max-shard-size", args.max_shard_size,
           "--no-progress"]
    t = time.perf_counter()
    child = subprocess.Popen(cmd)
    split = {"RssAnon": 0, "RssFile": 0}
    while child.poll() is None:  # RSS split: private memory vs file pages mapped from the source shards
        for key, value in _rss_split(child.pid).items():
            split[key] = max(split[key], value)
        time.sleep(0.05)
    if child.returncode != 0:
        raise SystemExit(f"export failed with exit code {child.returncode}")
    seconds = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # Linux: KiB
    from autoquant.costs import parse_size

    exported = sum(p.stat().st_size for p in (work / "export").iterdir())
    result = {
        "config": args.config, "layers": args.layers, "vocab": args.vocab, "plan": args.plan, "engine": args.engine,
        "max_shard_size": args.max_shard_size, **model, "export_s": round(seconds, 1),
        "export_bytes": exported, "peak_rss_bytes": peak,
        # sampled every 50 ms: anonymous (private) pages, and pages of mmapped files (the safetensors
        # shards read through safe_open: clean page cache the kernel can drop under pressure)
        "peak_rss_anon_bytes": split["RssAnon"], "peak_rss_file_bytes": split["RssFile"],
        "bound_bytes": parse_size(args.max_shard_size) + 2 * model["largest_tensor_bytes"] + 2 * 10**9,
        "machine": f"{torch.get_num_threads()} threads, torch {torch.__version__}",
    }
    result["within_bound"] = peak <= result["bound_bytes"]
    print(json.dumps(result, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
