"""autoquant's browser view: the Pareto front, per-layer sensitivity, a chosen plan, export.

    streamlit run app.py                       # reads ./runs
    streamlit run app.py -- --runs-dir DIR

Everything shown comes from files `autoquant search` and `autoquant profile` wrote
(autoquant.runs reads them); the app computes nothing it cannot show the source of.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

import altair as alt
import pandas as pd
import streamlit as st

from autoquant.runs import find_runs, find_sensitivity_tables, front_frame, plan_frame, plans_with_layers, sensitivity_frame


def _runs_dir() -> str:
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--runs-dir", default=os.environ.get("AUTOQUANT_RUNS_DIR", "runs"))
    args, _ = ap.parse_known_args(sys.argv[1:])
    return args.runs_dir


st.set_page_config(page_title="autoquant", layout="wide")
st.title("autoquant")
runs_dir = st.sidebar.text_input("runs directory", value=_runs_dir())
runs = find_runs(runs_dir)
tables = find_sensitivity_tables(runs_dir)
if not runs and not tables:
    st.info(f"No results under `{runs_dir}` yet. Run `autoquant search --budget 24GB` (or `autoquant profile`) first.")
    st.stop()

run = None
if runs:
    run = runs[[r.name for r in runs].index(st.sidebar.selectbox("search run", [r.name for r in runs]))]
    res = run.result
    budgets = res.get("budgets", {})
    st.sidebar.markdown(
        f"**model** {res.get('model', '?')}  \n**hardware** {res.get('hardware', '?')}"
        f"{' (latency estimated)' if res.get('latency_estimated') else ''}  \n"
        f"**batch** {res.get('batch')} · **context** {res.get('context')}  \n"
        f"**trials** {res.get('study', {}).get('trials')}"
    )

tab_front, tab_sens, tab_plan = st.tabs(["Pareto front", "Sensitivity", "Plan"])

# ---- Pareto front ---------------------------------------------------------------------------------
with tab_front:
    if run is None:
        st.info("No search run yet: `autoquant search --budget 24GB` writes one.")
    else:
        df = front_frame(run)
        metric = st.radio("quality axis", ["kl", "ppl_change_pct", "proxy_kl"], horizontal=True,
                          format_func={"kl": "measured KL", "ppl_change_pct": "measured Δppl %", "proxy_kl": "proxy KL (estimate)"}.get)
        plot = df.dropna(subset=[metric])
        positive = plot[metric] > 0
        log = metric != "ppl_change_pct" and bool(positive.all()) and len(plot) > 0
        y = alt.Y(metric, scale=alt.Scale(type="log") if log else alt.Scale(zero=False), title=metric)
        points = alt.Chart(plot).mark_point(filled=True, size=90).encode(
            x=alt.X("memory_GB", title="serving memory (GB)", scale=alt.Scale(zero=False)),
            y=y,
            color=alt.Color("kind", scale=alt.Scale(domain=["measured", "proxy only", "baseline"], range=["#1f77b4", "#aec7e8", "#d62728"])),
            shape=alt.Shape("recommended", scale=alt.Scale(domain=[False, True], range=["circle", "diamond"])),
            tooltip=["plan", "kind", "memory_GB", "bits_per_weight", "decode_ms", "perplexity", "ppl_change_pct", "kl", "proxy_kl", "formats"],
        )
        layers = [points]
        if budgets.get("memory_bytes"):
            rule = alt.Chart(pd.DataFrame({"budget": [budgets["memory_bytes"] / 1e9]})).mark_rule(strokeDash=[4, 4], color="gray").encode(x="budget")
            if budgets["memory_bytes"] / 1e9 < plot["memory_GB"].max() * 3:
                layers.append(rule)
        st.altair_chart(alt.layer(*layers).interactive(), width="stretch")
        rec = res.get("recommended")
        if rec:
            m = rec["measured"]
            st.success(f"Recommended: **{rec['label']}**: {rec['memory_bytes'] / 1e9:.3f} GB, {rec['bits_per_weight']:.2f} bits/weight, "
                       f"perplexity {m['perplexity']:.2f} ({m['ppl_change'] * 100:+.2f}%), KL {m['kl']:.4f}")
        if res.get("latency_estimated"):
            st.caption("Latency is **estimated** (roofline of the GPU's datasheet), not measured on a GPU.")
        st.dataframe(df, hide_index=True, width="stretch")
        for note in res.get("notes", []):
            st.caption(f"note: {note}")

# ---- Sensitivity ------------------------------------------------------------------------------------
with tab_sens:
    choices = [str(p) for p in tables]
    if run is not None and run.sensitivity_path is not None:
        default = str(run.sensitivity_path)
        if default not in choices:
            choices.insert(0, default)
    if not choices:
        st.info("No sensitivity table yet: `autoquant profile` writes one.")
    else:
        path = st.selectbox("sensitivity table", choices)
        sens, meta = sensitivity_frame(path)
        spearman = "n/a" if meta["spearman"] is None else f"{meta['spearman']:.3f}"
        st.markdown(f"**{meta['model']}**: {meta['entries']} (layer, format) pairs, {meta['measured']} measured; "
                    f"proxy-vs-measured rank agreement (Spearman) {spearman}.")
        sens["log10_kl"] = sens["estimated_kl"].clip(lower=1e-7).map(math.log10)
        order = sens.sort_values(["block", "layer"])["layer"].drop_duplicates().tolist()
        heat = alt.Chart(sens).mark_rect().encode(
            x=alt.X("format:N", title="format", axis=alt.Axis(orient="top", labelAngle=0)),
            y=alt.Y("layer:N", sort=order, title=None, axis=alt.Axis(labelFontSize=8)),
            color=alt.Color("log10_kl:Q", title="log10 est. KL", scale=alt.Scale(scheme="viridis")),
            tooltip=["layer", "role", "format", "estimated_kl", "measured_kl", "proxy"],
        ).properties(height=max(300, 9 * len(order)))
        st.altair_chart(heat, width="stretch")
        worst = sens.groupby("layer")["estimated_kl"].max().sort_values(ascending=False)
        c1, c2 = st.columns(2)
        c1.markdown("**Most sensitive** (worst format)")
        c1.dataframe(worst.head(10).rename("estimated KL"), width="stretch")
        c2.markdown("**Least sensitive**")
        c2.dataframe(worst.tail(10).rename("estimated KL"), width="stretch")


def export_panel(plan, res: dict, runs_dir: str, label: str) -> None:
    """The plan view's export: the same `export_plan` call as `autoquant export`, for a chosen engine."""
    from autoquant.engines import ENGINES
    from autoquant.errors import UserError
    from autoquant.export import export_plan

    st.markdown("**Export a quantized checkpoint**")
    engines = list(ENGINES)
    planned = plan.metadata.get("engine") or res.get("engine") or "vllm"
    st.caption(f"this plan was searched for {planned}; another engine may refuse it (export names the layer)")
    engine = st.selectbox("serving engine", engines, index=engines.index(planned) if planned in engines else 0)
    out_dir = st.text_input("checkpoint directory", value=str(Path(runs_dir) / "export" / label.replace(" ", "-")))
    if st.button("Export checkpoint"):
        try:
            with st.spinner("quantizing and writing (streamed, layer by layer)..."):
                path = export_plan(plan, out_dir, engine=engine, model=res.get("model_spec"),
                                   command=f"autoquant export --plan plan.json --engine {engine} --out {out_dir}")
            st.success(f"wrote {path} for {engine}: see its README.md for how to load it")
        except UserError as e:
            st.error(str(e))


# ---- Plan ---------------------------------------------------------------------------------------------
with tab_plan:
    plans = plans_with_layers(run) if run is not None else {}
    if not plans:
        st.info("No plan with per-layer formats in this run.")
    else:
        label = st.selectbox("plan", list(plans))
        plan = plans[label]
        pf = plan_frame(plan)
        st.markdown(f"**{label}**: {plan.summary()}")
        by_block = alt.Chart(pf).mark_rect().encode(
            x=alt.X("block:O", title="block (-1: outside the blocks, e.g. lm_head)"),
            y=alt.Y("role:N"),
            color=alt.Color("format:N"),
            tooltip=["layer", "format"],
        )
        st.altair_chart(by_block, width="stretch")
        st.dataframe(pf, hide_index=True, width="stretch")
        plan_json = json.dumps(plan.to_dict(), indent=2)
        st.download_button("Download plan (JSON)", plan_json, file_name="plan.json", mime="application/json")
        export_panel(plan, res, runs_dir, label)
