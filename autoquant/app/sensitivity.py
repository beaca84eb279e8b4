"""The per-layer sensitivity heatmap: estimated KL of each (layer, format, quantizer), layers in
model order; a column per format, and per quantizer where the profile has more than rtn.

Cells with a dot were measured (the full model with only that layer quantized); the rest are
the calibrated proxy. The two tables name the most and least sensitive layers.
"""

from __future__ import annotations

import altair as alt
import streamlit as st

from autoquant.runs import sensitivity_frame


def render(table) -> None:
    sens, meta = sensitivity_frame(table)
    spearman = "n/a" if meta["spearman"] is None else f"{meta['spearman']:.3f}"
    st.markdown(f"**{meta['model']}**: {meta['entries']} (layer, format, quantizer) entries, {meta['measured']} measured (dots); "
                f"proxy-vs-measured rank agreement (Spearman) {spearman}; unmeasured cells are "
                f"{meta['proxy_to_kl']:.3g} x proxy (estimated).")
    order = sens.sort_values(["block", "layer"])["layer"].drop_duplicates().tolist()
    enc = {"x": alt.X("format:N", title="format", axis=alt.Axis(orient="top", labelAngle=0)),
           "y": alt.Y("layer:N", sort=order, title=None, axis=alt.Axis(labelFontSize=8, labelLimit=320))}
    cells = alt.Chart(sens).mark_rect().encode(
        **enc, color=alt.Color("log10_kl:Q", title="log10 est. KL", scale=alt.Scale(scheme="viridis")),
        tooltip=["layer", "role", "format", "quantizer", alt.Tooltip("estimated_kl", format=".3g"),
                 alt.Tooltip("measured_kl", format=".3g"), alt.Tooltip("proxy", format=".3g")],
    )
    dots = alt.Chart(sens).transform_filter("datum.measured").mark_circle(size=14, color="white").encode(**enc)
    st.altair_chart((cells + dots).properties(height=max(300, 9 * len(order))), width="stretch", key="heatmap")
    worst = sens.groupby("layer")["estimated_kl"].max().sort_values(ascending=False)
    c1, c2 = st.columns(2)
    c1.markdown("**Most sensitive** (worst format)")
    c1.dataframe(worst.head(10).rename("estimated KL"), width="stretch")
    c2.markdown("**Least sensitive**")
    c2.dataframe(worst.tail(10).rename("estimated KL"), width="stretch")
