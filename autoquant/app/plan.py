"""One plan, per layer: its format (and quantizer) by block and role, with each layer's bytes and estimated KL."""

from __future__ import annotations

import json

import altair as alt
import streamlit as st

from autoquant.plan import Plan
from autoquant.runs import SearchRun, plan_frame


def render(run: SearchRun, label: str, plan: Plan, table) -> None:
    pf = plan_frame(plan, run, table)
    mb = pf["bytes"].sum() / 1e6 if "bytes" in pf else float("nan")
    kl = pf["estimated_kl"].sum() if "estimated_kl" in pf else None
    st.markdown(f"**{label}**: {plan.summary()}. Linear weights {mb:.2f} MB"
                + ("" if kl is None else f", estimated KL {kl:.4f} (sum over layers, from the sensitivity table)") + ".")
    tooltip = ["layer", "format", "quantizer", "bits"] + [c for c in ("bytes", "estimated_kl") if c in pf]
    by_block = alt.Chart(pf).mark_rect(stroke="white").encode(
        x=alt.X("block:O", title="block (-1: outside the blocks, e.g. lm_head)"),
        y=alt.Y("role:N", title=None, sort=list(dict.fromkeys(pf["role"])), axis=alt.Axis(labelOverlap=False)),
        color=alt.Color("format:N", scale=alt.Scale(scheme="tableau10")),
        # a calibrated quantizer (gptq, awq) as a dark outline: rtn cells stay plain
        stroke=alt.condition("datum.quantizer != 'rtn'", alt.value("#222"), alt.value("white")),
        strokeWidth=alt.condition("datum.quantizer != 'rtn'", alt.value(2), alt.value(1)),
        tooltip=tooltip,
    ).properties(height=260, title="format by block (dark outline: gptq/awq)")
    st.altair_chart(by_block, width="stretch", key="plan_chart")
    st.dataframe(pf, hide_index=True, width="stretch")
    st.download_button("Download plan (JSON)", json.dumps(plan.to_dict(), indent=2),
                       file_name=f"plan-{label.replace(' ', '-')}.json", mime="application/json")
