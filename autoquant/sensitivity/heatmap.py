"""The sensitivity table as one image: where in the model quantization hurts, per format.

One panel per format and quantizer (`int4-g128-asym (gptq)`); in each, rows are blocks (top to bottom as data flows) and columns
the layer roles (q, k, v, o, gate, up, down, ...); layers outside blocks (lm_head) get a
last row. Colour is log10 of the estimated KL (nats/token, one scale for all panels), so
panels compare; a dot marks a measured pair, the rest are the calibrated proxy.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from autoquant.jsonfile import write_atomic
from autoquant.layers import ROLES, layer_block
from autoquant.sensitivity.table import SensitivityTable, variant_label

_FLOOR = 1e-7  # nats/token shown as the bottom of the scale


def save_heatmap(table: SensitivityTable, path: str | os.PathLike) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    roles = [r for r in ROLES if r in set(table.roles.values())]
    blocks = sorted({b for b in (layer_block(n) for n in table.layers) if b is not None})
    loose = [n for n in table.layers if layer_block(n) is None]
    row_names = [str(b) for b in blocks] + loose
    row_of = {n: (blocks.index(layer_block(n)) if layer_block(n) is not None else len(blocks) + loose.index(n))
              for n in table.layers}

    present = {(e.format, e.quantizer) for e in table.entries.values()}
    variants = [(f, q) for f in table.formats for q in table.quantizers if (f, q) in present]
    grids, marks = [], []
    for fmt, quantizer in variants:
        grid = np.full((len(row_names), len(roles)), np.nan)
        measured = []
        for name in table.layers:
            e = table.entries.get((name, fmt, quantizer))
            if e is None:
                continue
            r, c = row_of[name], roles.index(table.roles[name])
            grid[r, c] = math.log10(max(table.estimated_kl(name, fmt, quantizer), _FLOOR))
            if e.measured:
                measured.append((c, r))
        grids.append(grid)
        marks.append(measured)
    finite = np.concatenate([g[np.isfinite(g)] for g in grids]) if grids else np.array([0.0])
    vmin, vmax = (float(finite.min()), float(finite.max())) if finite.size else (-7.0, 0.0)

    n = len(variants)
    height = max(3.0, 0.18 * len(row_names) + 1.6)
    fig, axes = plt.subplots(1, n, figsize=(1.2 + 0.45 * len(roles) * n + 0.8, height), squeeze=False, sharey=True)
    image = None
    for ax, (fmt, quantizer), grid, measured in zip(axes[0], variants, grids, marks):
        image = ax.imshow(grid, aspect="auto", cmap="magma", vmin=vmin, vmax=vmax, interpolation="nearest")
        if measured:
            xs, ys = zip(*measured)
            ax.scatter(xs, ys, s=6, c="cyan", marker="o", linewidths=0)
        ax.set_title(variant_label(fmt, quantizer).replace(" ", "\n"), fontsize=9)
        ax.set_xticks(range(len(roles)), roles, rotation=90, fontsize=7)
        ax.set_yticks(range(len(row_names)), row_names, fontsize=6)
    axes[0][0].set_ylabel("block")
    cbar = fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8, pad=0.02)
    cbar.set_label("log10 estimated KL (nats/token)")
    measured_n = len(table.measured_entries())
    rho = "n/a" if table.spearman is None else f"{table.spearman:.3f}"
    fig.suptitle(
        f"{table.model}: sensitivity per layer and format\n"
        f"{measured_n} measured entries (dots), others {table.normalisation} proxy x {table.proxy_to_kl:.3g}; "
        f"Spearman {rho}",
        fontsize=9,
    )
    try:
        return write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=130, bbox_inches="tight"))
    finally:
        plt.close(fig)
