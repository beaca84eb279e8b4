"""The Pareto front of one run: memory x quality with latency as colour, memory x latency beside it.

Measured plans are filled, proxy-only plans hollow (their quality is the search's estimate),
uniform baselines grey squares; the recommended plan is a green diamond, the chosen one a ring;
budgets are dashed lines. Hovering a point shows its plan in short.
"""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from autoquant.runs import SearchRun, front_frame

# y-axis choices: column -> label. "quality_kl" is measured KL where measured, else the proxy.
QUALITY_AXES = {
    "quality_kl": "KL, nats/token (measured; proxy estimate where not measured)",
    "ppl_change_pct": "Δ perplexity % (measured plans only)",
    "proxy_kl": "proxy KL (the search's estimate, every plan)",
}
TOOLTIP = ["plan", "kind", "formats", alt.Tooltip("memory_GB", format=".4f"), alt.Tooltip("bits_per_weight", format=".2f"),
           alt.Tooltip("decode_ms", format=".4f"), "latency", alt.Tooltip("perplexity", format=".3f"),
           alt.Tooltip("ppl_change_pct", format="+.2f"), alt.Tooltip("kl", format=".5f"), alt.Tooltip("proxy_kl", format=".5f")]
KIND_SHAPES = alt.Scale(domain=["measured", "proxy only", "baseline"], range=["circle", "circle", "square"])


def _budget_rules(run: SearchRun, metric: str) -> tuple[list, list]:
    """(vertical rules at memory budgets, horizontal rules at a quality budget on this axis)."""
    b = run.result.budgets
    x = [{"memory_GB": b.memory_bytes / 1e9, "budget": f"memory budget {b.memory_bytes / 1e9:.3g} GB"}]
    y = []
    if b.quality and b.quality.startswith("kl=") and metric in ("quality_kl", "proxy_kl"):
        y.append({"y": float(b.quality[3:]), "budget": f"quality budget {b.quality}"})
    elif b.quality and b.quality.startswith("ppl=") and metric == "ppl_change_pct":
        y.append({"y": float(b.quality[4:].rstrip("%")), "budget": f"quality budget {b.quality}"})
    return x, y


def _points(df: pd.DataFrame, y: alt.Y, colour: alt.Color) -> list[alt.Chart]:
    base = alt.Chart(df).encode(x=alt.X("memory_GB:Q", title="serving memory, GB (estimated)", scale=alt.Scale(zero=False)),
                                y=y, tooltip=TOOLTIP)
    measured = base.transform_filter("datum.kind == 'measured'").mark_point(filled=True, size=110, opacity=0.95).encode(
        color=colour, shape=alt.Shape("kind:N", scale=KIND_SHAPES, title="point"))
    proxy = base.transform_filter("datum.kind == 'proxy only'").mark_point(filled=False, size=60, strokeWidth=1.5).encode(
        color=colour, shape=alt.Shape("kind:N", scale=KIND_SHAPES, title="point"))
    baseline = base.transform_filter("datum.kind == 'baseline'").mark_point(filled=True, size=150, color="#777").encode(
        shape=alt.Shape("kind:N", scale=KIND_SHAPES, title="point"))
    labels = base.transform_filter("datum.kind == 'baseline'").mark_text(align="left", dx=9, fontSize=11, color="#555").encode(
        text="plan:N")
    rec = base.transform_filter("datum.recommended").mark_point(shape="diamond", size=420, filled=False, strokeWidth=3,
                                                                 color="#2ca02c")
    rec_label = base.transform_filter("datum.recommended").mark_text(align="left", dx=14, dy=-10, fontWeight="bold",
                                                                      color="#2ca02c").encode(text=alt.value("recommended"))
    chosen = base.transform_filter("datum.chosen && !datum.recommended").mark_point(size=420, filled=False, strokeWidth=2,
                                                                                      color="#d62728")
    return [proxy, measured, baseline, labels, rec, rec_label, chosen]


def _rules(rows: list[dict], channel: str, field: str) -> list[alt.Chart]:
    if not rows:
        return []
    data = pd.DataFrame(rows)
    enc = {channel: alt.X(f"{field}:Q") if channel == "x" else alt.Y(f"{field}:Q")}
    rule = alt.Chart(data).mark_rule(strokeDash=[6, 4], color="#d62728").encode(**enc, tooltip=["budget"])
    text = alt.Chart(data).mark_text(align="left", dx=4, dy=-6 if channel == "y" else 0, color="#d62728",
                                     baseline="top" if channel == "x" else "bottom").encode(**enc, text="budget:N")
    if channel == "x":
        text = text.encode(y=alt.value(4))
    else:
        text = text.encode(x=alt.value(4))
    return [rule, text]


def render(run: SearchRun, chosen: str | None) -> None:
    res = run.result
    df = front_frame(run)
    df["quality_kl"] = df["kl"].where(df["kl"].notna(), df["proxy_kl"])
    df["chosen"] = df["plan"] == chosen
    metric = st.radio("quality axis", list(QUALITY_AXES), horizontal=True, format_func=QUALITY_AXES.get, key="quality_axis")
    plot = df.dropna(subset=[metric])
    lat_title = f"decode ms ({'estimated' if res.latency_estimated else 'measured'})"
    colour = alt.Color("decode_ms:Q", title=lat_title, scale=alt.Scale(scheme="viridis", reverse=True))
    # symlog: the front spans 0 (fp16) to ~1 nat; a log axis would drop the zero, a linear one squash the rest
    scale = alt.Scale(type="symlog", constant=1e-4) if metric != "ppl_change_pct" else alt.Scale(zero=False)
    y = alt.Y(f"{metric}:Q", title=QUALITY_AXES[metric], scale=scale)
    mem_rules, q_rules = _budget_rules(run, metric)
    if mem_rules[0]["memory_GB"] > plot["memory_GB"].max() * 3:
        mem_rules = []  # a 24 GB budget beside a 0.1 GB model would squash every point against the left edge
    quality = alt.layer(*_points(plot, y, colour), *_rules(mem_rules, "x", "memory_GB"), *_rules(
        [{metric: r["y"], "budget": r["budget"]} for r in q_rules], "y", metric)).properties(
        height=420, title="quality vs memory").interactive()

    lat = df.dropna(subset=["decode_ms"])
    lat_rules = []
    if res.budgets.latency_s is not None:
        lat_rules = _rules([{"decode_ms": res.budgets.latency_s * 1e3, "budget": f"latency budget {res.budgets.latency_s * 1e3:.3g} ms"}],
                           "y", "decode_ms")
    latency = alt.layer(*_points(lat, alt.Y("decode_ms:Q", title=lat_title, scale=alt.Scale(zero=False)), colour),
                        *_rules(mem_rules, "x", "memory_GB"), *lat_rules).properties(
        height=420, title="decode latency vs memory").interactive()
    left, right = st.columns([3, 2])
    left.altair_chart(quality, width="stretch", key="front_chart")
    right.altair_chart(latency, width="stretch", key="latency_chart")

    rec = res.recommended
    if rec is not None and rec.measured is not None:
        m = rec.measured
        st.success(f"Recommended: **{rec.label}** ({rec.summary}): {rec.memory_bytes / 1e9:.3f} GB, "
                   f"{rec.bits_per_weight:.2f} bits/weight, perplexity {m.perplexity:.2f} ({m.ppl_change * 100:+.2f}%), KL {m.kl:.4f}")
    else:
        st.warning("No measured plan meets every budget in this run: nothing is recommended.")
    st.caption(f"Memory is estimated by the memory model. Latency is **{'estimated' if res.latency_estimated else 'measured'}** "
               f"({res.hardware}). Quality measured on {res.reference.tokens} tokens of {res.reference.text} "
               f"(reference perplexity {res.reference.perplexity:.2f}); hollow points are proxy estimates only.")
    st.dataframe(df.drop(columns=["quality_kl", "chosen"]), hide_index=True, width="stretch")
    for note in res.notes:
        st.caption(f"note: {note}")
