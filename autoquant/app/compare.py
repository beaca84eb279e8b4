"""Runs side by side: the same model under several budgets or on several GPUs, and the schedule
catalog's targets (one per model x GPU) when there is one."""

from __future__ import annotations

import altair as alt
import streamlit as st

from autoquant.errors import UserError
from autoquant.runs import SearchRun, catalog_frame, compare_frame, fronts_frame


def render(runs: list[SearchRun], current: SearchRun | None, catalog_loader) -> None:
    models = sorted({r.result.model for r in runs})
    if runs:
        default_model = current.result.model if current else models[0]
        model = st.selectbox("model", models, index=models.index(default_model), key="compare_model")
        same = [r for r in runs if r.result.model == model]
        names = st.multiselect("runs", [r.name for r in same], default=[r.name for r in same], key="compare_runs")
        picked = [r for r in same if r.name in names]
        if picked:
            st.dataframe(compare_frame(picked), hide_index=True, width="stretch")
            pts = fronts_frame(picked)
            if not pts.empty:
                enc = {"x": alt.X("memory_GB:Q", title="serving memory, GB (estimated)", scale=alt.Scale(zero=False)),
                       "y": alt.Y("kl:Q", title="measured KL, nats/token", scale=alt.Scale(type="symlog", constant=1e-4)),
                       "color": alt.Color("run:N")}
                lines = alt.Chart(pts).mark_line(point=True).encode(
                    **enc, tooltip=["run", "plan", "formats", "memory_GB", "kl", "decode_ms"])
                recs = alt.Chart(pts).transform_filter("datum.recommended").mark_point(
                    shape="diamond", size=300, filled=False, strokeWidth=3).encode(**enc)
                st.altair_chart((lines + recs).properties(height=380, title="measured fronts (diamond: recommended)"),
                                width="stretch", key="compare_chart")
    st.markdown("**Schedule catalog** (scheduled searches: one target per model and GPU)")
    try:
        targets = catalog_loader()
    except UserError as e:
        st.error(str(e))
        return
    if targets is None:
        st.info("No schedule catalog in this runs directory (runs/catalog/catalog.json): scheduled searches write one.")
        return
    cat = catalog_frame(targets)
    st.dataframe(cat, hide_index=True, width="stretch")
    lat = cat.dropna(subset=["decode_ms"])
    if not lat.empty:
        bars = alt.Chart(lat).mark_bar().encode(
            x=alt.X("decode_ms:Q", title="decode ms of the recommended plan"), y=alt.Y("hardware:N", title=None),
            color=alt.Color("model:N"), row=alt.Row("model:N", title=None),
            tooltip=["target", "hardware", "decode_ms", "latency", "memory_GB", "kl", "delta_ppl"])
        st.altair_chart(bars, key="catalog_chart")
