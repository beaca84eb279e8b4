"""`profile_sensitivity`: from a model, a search space and calibration text to a table.

    layers + formats  <- the model's config (meta device) and the search space
    calib windows     <- the calibration text, tokenized once here
    cache             <- finished results of earlier runs with the same key (cache.py)
    Ray workers       <- started only if something is missing (executor.py)
      1. statistics   one calibration pass, windows split over workers, sums merged here
      2. proxy        one task per layer: its proxy error in every format (proxy.py)
      3. measured KL  one task per (layer, format) of the measured set (worker.py, autoquant.quality)
    table             <- proxies normalised, the measured pairs calibrate them (table.py)

Every result is appended to the cache as it arrives, so an interrupted profile resumes
where it stopped and a repeated one returns at once without starting Ray.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from autoquant.data import TextSource, token_windows
from autoquant.errors import UserError
from autoquant.layers import LinearLayer, discover_layers
from autoquant.models import ModelSource, build_meta_model, fingerprint, load_config, load_tokenizer
from autoquant.progress import Progress
from autoquant.quantizers.awq import fold_target
from autoquant.quantizers.calibrate import CALIB_TOKENS
from autoquant.sensitivity.cache import CacheKey, ProfileCache, Triple
from autoquant.sensitivity.executor import RayExecutor, Task
from autoquant.sensitivity.proxy import NORMALISATIONS, ProxyParts
from autoquant.sensitivity.sample import choose_sample
from autoquant.sensitivity.statistics import LayerStatistics
from autoquant.sensitivity.table import SensitivityEntry, SensitivityTable, calibrate
from autoquant.sensitivity.worker import WorkerSpec
from autoquant.space import SearchSpace

# bump when the statistics, proxy or measurement change: invalidates caches. 2: quantizers; a
# tied lm_head in a llama.cpp block format measured as the one shared tensor
METHOD_VERSION = "2"
DEFAULT_CALIB_TOKENS = 1024  # proxy ranks the same from 512 to 2048 tokens on SmolLM2 (bench/README.md)
# With gptq or awq in the space: what whole-model calibration uses (quantizers.calibrate). gptq
# fits H, and from too few tokens for a K-wide input it fits the calibration text, not the model.
CALIBRATED_CALIB_TOKENS = CALIB_TOKENS
DEFAULT_MEASURE_TOKENS = 512
DEFAULT_SAMPLE = 32  # ~1.3 s a pair on 2 cores at 512 tokens: keeps the default profile near 2 minutes
DEFAULT_NORMALISATION = NORMALISATIONS[0]
MEASURE_MODES = ("auto", "all", "sample", "none")
MAX_WINDOW = 512  # tokens per calibration window


def profile_targets(layers: list[LinearLayer], space: SearchSpace, model: nn.Module | None = None) -> dict[str, list[tuple[str, str]]]:
    """Layer -> the (quantized format, quantizer) pairs the space allows it (layers with none are
    left out). With `model` (meta device is enough), awq only where its scale has an op to fold into."""
    out = {}
    for layer in layers:
        awq_ok = model is None or fold_target(model, layer.name) is not None
        variants = [(str(f), q) for f in space.formats_for(layer) if not f.is_float
                    for q in space.quantizers_for(layer, f) if q != "awq" or awq_ok]
        if variants:
            out[layer.name] = variants
    return out


def _window_length(config, calib_tokens: int) -> int:
    max_pos = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None) or MAX_WINDOW
    return max(2, min(MAX_WINDOW, int(max_pos), calib_tokens))


def _q4_note(source: ModelSource, formats: list[str]) -> list[str]:
    if source.gguf_file and "q4_1" in source.gguf_file.lower() and "int4-g32-asym" in formats:
        return [
            "this model's weights were stored as GGUF Q4_1 (blocks of 32 with scale + min), which "
            "int4-g32-asym reproduces almost exactly: its tiny error here is an artefact of this "
            "checkpoint, not what int4-g32-asym costs on a model trained in 16 bits"
        ]
    return []


def profile_sensitivity(
    source: ModelSource,
    space: SearchSpace,
    calib: TextSource,
    *,
    calib_tokens: int | None = None,
    measure: str = "auto",
    measure_tokens: int = DEFAULT_MEASURE_TOKENS,
    sample_size: int = DEFAULT_SAMPLE,
    workers: int | None = None,
    address: str | None = None,
    progress: bool = True,
    normalisation: str = DEFAULT_NORMALISATION,
    cache_dir: str | Path | None = None,
) -> SensitivityTable:
    """Profile every (layer, format, quantizer) of `space` on `calib`; cached and resumable (see
    module doc).

    measure: "all" measures every entry's KL, "sample" `sample_size` entries chosen to
    calibrate the proxy, "none" no entry; "auto" is "all" on GPU workers, "sample" on CPU.
    calib_tokens: None is DEFAULT_CALIB_TOKENS, or CALIBRATED_CALIB_TOKENS when the space has
    gptq or awq.
    """
    t_start = time.perf_counter()
    if measure not in MEASURE_MODES:
        raise UserError(f"{{measure}} must be one of {', '.join(MEASURE_MODES)} (got {measure!r})", params=("measure",))
    if normalisation not in NORMALISATIONS:
        raise UserError(f"{{normalisation}} must be one of {', '.join(NORMALISATIONS)} (got {normalisation!r})",
                        params=("normalisation",))
    if calib_tokens is None:
        calib_tokens = CALIBRATED_CALIB_TOKENS if set(space.all_quantizers()) - {"rtn"} else DEFAULT_CALIB_TOKENS
    if calib_tokens < 16 or measure_tokens < 16:
        raise UserError(f"{{calib_tokens}} and {{measure_tokens}} must be at least 16 (got {calib_tokens}, {measure_tokens})",
                        params=("calib_tokens", "measure_tokens"))
    if sample_size < 1:
        raise UserError(f"{{sample_size}} must be at least 1 (got {sample_size})", params=("sample_size",))
    if workers is not None and workers < 1:
        raise UserError(f"{{workers}} must be at least 1 (got {workers})", params=("workers",))

    config = load_config(source)
    meta = build_meta_model(config)
    layers = discover_layers(meta)
    roles = {l.name: l.role for l in layers}
    targets = profile_targets(layers, space, meta)
    del meta
    if not targets:
        raise UserError(f"search space {space.name!r} allows no quantized format for any layer of {source.display}: nothing to profile")
    triples: list[Triple] = [(name, f, q) for name, vs in targets.items() for f, q in vs]
    profiled = {f for _, f, _ in triples}
    formats = [str(f) for f in space.all_formats() if str(f) in profiled]
    quantizers = [q for q in space.all_quantizers() if any(t[2] == q for t in triples)]

    seq_len = _window_length(config, calib_tokens)
    # clone(): the windows are views of the whole tokenized text, which would travel with them.
    calib_windows = token_windows(load_tokenizer(source), calib, seq_len, calib_tokens).clone()
    measure_windows = calib_windows[: max(1, min(len(calib_windows), measure_tokens // seq_len))].clone()
    key = CacheKey(fingerprint(source), calib.fingerprint, int(calib_windows.numel()), seq_len, METHOD_VERSION)
    cache = ProfileCache(key, cache_dir)
    spec = WorkerSpec(source, calib_windows, measure_windows)
    n_measure_tokens = int(measure_windows.numel())

    timings: dict[str, float] = {}
    ui = Progress(progress)
    executor: RayExecutor | None = None

    def workers_up() -> RayExecutor:
        nonlocal executor
        if executor is None:
            t = time.perf_counter()
            task = ui.phase("starting Ray workers", 1)
            # fp32 weights, plus about as much again for activations, statistics and the
            # reference distribution
            worker_bytes = 8 * sum(l.params for l in layers if not l.tied) + (1 << 30)
            executor = RayExecutor(spec, workers=workers, address=address, worker_bytes=worker_bytes)
            executor.start()
            executor.worker_pids()  # waits until every worker has loaded the model
            ui.advance(task)
            timings["workers_start"] = time.perf_counter() - t
        return executor

    try:
        with ui:
            # ---- 1 + 2: statistics and proxies of the entries not cached yet ----------------
            cached = cache.proxies()
            missing = {name: [(f, q) for f, q in vs if (name, f, q) not in cached] for name, vs in targets.items()}
            missing = {name: vs for name, vs in missing.items() if vs}
            refs: dict[str, Any] = {}  # layer -> its statistics in Ray's object store
            if missing:
                ex = workers_up()
                refs = _statistics_refs(ex, ui, calib_windows.shape[0], list(missing), timings)
                t = time.perf_counter()
                bar = ui.phase("proxy error (layers)", len(missing))
                # Largest layers first: the slowest tasks start early, the tail stays short.
                by_size = sorted(missing, key=lambda n: -_params(layers, n))
                tasks = [Task(name, "proxies", (refs[name], name, missing[name])) for name in by_size]

                def proxy_done(task: Task, result: tuple[dict, dict[str, float]]) -> None:
                    cache.add_proxies(task.key, *result)
                    ui.advance(bar)

                ex.run(tasks, proxy_done)
                timings["proxy"] = time.perf_counter() - t
            proxy_parts = cache.proxies()
            proxy = {p: proxy_parts[p].value(normalisation) for p in triples}

            # ---- 3: measured KL of the chosen entries ------------------------------------
            mode = measure
            if mode == "auto":
                on_gpu = workers_up().resources.device == "cuda" if (address or _ray_address_env()) else torch.cuda.is_available()
                mode = "all" if on_gpu else "sample"
            if mode == "all":
                chosen = list(triples)
            elif mode == "sample":
                chosen = choose_sample(proxy, roles, sample_size, seed=0)
            else:
                chosen = []
            done = cache.measurements(n_measure_tokens)
            to_measure = [p for p in chosen if p not in done]
            # gptq/awq entries are quantized in the worker from the layer's statistics, as their proxy was
            calibrated = {layer for layer, _, q in to_measure if q != "rtn"}
            refs = {name: ref for name, ref in refs.items() if name in calibrated}
            if to_measure:
                ex = workers_up()
                if calibrated - refs.keys():
                    refs.update(_statistics_refs(ex, ui, calib_windows.shape[0], sorted(calibrated - refs.keys()), timings))
                t = time.perf_counter()
                bar = ui.phase("measured KL (entries)", len(to_measure))

                def kl_done(task: Task, m) -> None:
                    cache.add_measurement(task.key, n_measure_tokens, m)
                    ui.advance(bar)

                ex.run([Task(p, "measure", (*p, refs[p[0]] if p[2] != "rtn" else None)) for p in to_measure], kl_done)
                timings["measure"] = time.perf_counter() - t
            refs.clear()
            if not missing and not to_measure:
                ui.note(f"[dim]all {len(triples)} proxies and {len(chosen)} measurements cached ({cache.path})[/dim]")
    finally:
        if executor is not None:
            executor.stop()

    measured = cache.measurements(n_measure_tokens)
    entries = {}
    for p in triples:
        m = measured.get(p)
        entries[p] = SensitivityEntry(p[0], p[1], proxy[p], None if m is None else m.kl,
                                      None if m is None else m.ppl_change, p[2])
    fit = calibrate(list(entries.values()), prior=1.0)
    ref_ppl = next((m.reference_perplexity for m in measured.values()), None)
    notes = _q4_note(source, formats)
    if executor is not None and executor.memory_failures:
        notes.append(
            f"{len(executor.memory_failures)} task attempt(s) ran out of memory in a worker, which was restarted; "
            f"each task ran again (first: {executor.memory_failures[0]})"
        )
    if set(quantizers) - {"rtn"} and 2 * n_measure_tokens > int(calib_windows.numel()):
        notes.append(
            f"calibration ({int(calib_windows.numel())} tokens) is too short to hold the {n_measure_tokens} measurement "
            "tokens out of the gptq/awq fits: their measured KL is on tokens they were fitted to (optimistic)"
        )
    if fit.measured < 2:
        notes.append(
            f"no measured pairs to calibrate the proxy: estimated KL = {normalisation} proxy x 1.0 (uncalibrated)"
        )
    timings["total"] = time.perf_counter() - t_start
    r = executor.resources if executor is not None else None
    return SensitivityTable(
        model=source.display,
        model_fingerprint=key.model_fingerprint,
        calib_fingerprint=key.calib_fingerprint,
        method_version=METHOD_VERSION,
        layers=list(targets),
        formats=formats,
        entries=entries,
        proxy_to_kl=fit.proxy_to_kl,
        spearman=fit.spearman,
        normalisation=normalisation,
        calibrated=fit.measured >= 2,
        spearman_by_format=fit.spearman_by_format,
        roles={name: roles[name] for name in targets},
        calib_name=calib.name,
        calib_tokens=key.calib_tokens,
        measure_tokens=n_measure_tokens,
        reference_perplexity=ref_ppl,
        timings={k: round(v, 2) for k, v in timings.items()},
        notes=notes,
        executor="" if r is None else f"Ray, {r.workers} worker(s) x {r.threads} thread(s) ({r.device})",
        quantizers=quantizers,
        proxy_to_kl_by_quantizer=fit.proxy_to_kl_by_quantizer,
        quantizer_seconds={q: round(t, 2) for q, t in cache.proxy_seconds().items() if q in quantizers},
    )


def _ray_address_env() -> str | None:
    return os.environ.get("RAY_ADDRESS") or None


def _params(layers: list[LinearLayer], name: str) -> int:
    return next(l.params for l in layers if l.name == name)


def _statistics_refs(ex: RayExecutor, ui: Progress, n_windows: int, layers: list[str], timings: dict) -> dict[str, Any]:
    """One calibration pass for `layers`, its statistics put in Ray's object store: layer -> ref.

    One object per layer input (q/k/v share one), not one for all: an 8B model's float32 X^T X
    totals ~33 GB, more than Ray's object store takes in one piece (the H200 profile stalled
    in ray.put); pieces of <= 0.8 GB spill one by one.
    """
    stats = _statistics(ex, ui, n_windows, layers, timings)
    by_input: dict[str, list[str]] = {}
    for name in layers:
        by_input.setdefault(stats.input_of[name], []).append(name)
    refs = {}
    for names in by_input.values():
        ref = ex.put(stats.subset(names))
        refs.update(dict.fromkeys(names, ref))
    return refs


def _statistics(ex: RayExecutor, ui: Progress, n_windows: int, layers: list[str], timings: dict) -> LayerStatistics:
    """One calibration pass, its windows split evenly over the workers, the sums merged."""
    t = time.perf_counter()
    n = min(len(ex.actors), n_windows)
    bounds = [round(i * n_windows / n) for i in range(n + 1)]
    tasks = [Task(i, "statistics", (bounds[i], bounds[i + 1], layers)) for i in range(n)]
    bar = ui.phase("calibration pass (shards)", len(tasks))
    parts: list[LayerStatistics] = []

    def done(task: Task, stats: LayerStatistics) -> None:
        parts.append(stats)
        ui.advance(bar)

    ex.run(tasks, done)
    total = parts[0]
    for p in parts[1:]:
        total = total.merge(p)
    timings["statistics"] = timings.get("statistics", 0.0) + time.perf_counter() - t
    return total
