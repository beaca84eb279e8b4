"""The heatmap image: written, sized by blocks and formats."""

from __future__ import annotations

import matplotlib.image as mpimg

from autoquant.sensitivity.heatmap import save_heatmap
from autoquant.sensitivity.table import SensitivityEntry, SensitivityTable


def test_heatmap_written(tmp_path):
    layers, roles, entries = [], {}, {}
    for b in range(6):
        for role, suffix in (("q", "self_attn.q_proj"), ("down", "mlp.down_proj")):
            name = f"model.layers.{b}.{suffix}"
            layers.append(name)
            roles[name] = role
            for i, fmt in enumerate(("int8-pc-sym", "int4-g128-asym")):
                entries[(name, fmt)] = SensitivityEntry(name, fmt, 10.0 ** (-6 + 2 * i + b / 6), kl=1e-4 if b == 0 else None)
    layers.append("lm_head")
    roles["lm_head"] = "lm_head"
    entries[("lm_head", "int8-pc-sym")] = SensitivityEntry("lm_head", "int8-pc-sym", 1e-3)
    table = SensitivityTable("m", "f", "c", "1", layers, ["int8-pc-sym", "int4-g128-asym"], entries, 1.3, 0.9, roles=roles)
    path = save_heatmap(table, tmp_path / "x" / "sensitivity.png")
    img = mpimg.imread(path)
    assert img.shape[0] > 200 and img.shape[1] > 300  # a real figure, two panels
