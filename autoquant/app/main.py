"""The page `streamlit run` executes: the sidebar picks a runs directory, a run and a plan; one tab
per view. `autoquant app --runs-dir DIR` passes DIR as `-- --runs-dir DIR` (or AUTOQUANT_RUNS_DIR)."""

from __future__ import annotations

import argparse
import os
import sys

import streamlit as st

from autoquant.app import compare, data, export, front, plan, sensitivity
from autoquant.errors import UserError
from autoquant.runs import catalog_path, find_sensitivity_tables, plans_with_layers


def runs_dir_arg() -> str:
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--runs-dir", default=os.environ.get("AUTOQUANT_RUNS_DIR", "runs"))
    args, _ = ap.parse_known_args(sys.argv[1:])
    return args.runs_dir


def main() -> None:
    st.set_page_config(page_title="autoquant", layout="wide")
    st.title("autoquant")
    runs_dir = st.sidebar.text_input("runs directory", value=runs_dir_arg())
    scan = data.scan_runs(runs_dir)
    tables = [str(p) for p in find_sensitivity_tables(runs_dir)]
    for problem in scan.problems:
        st.sidebar.warning(problem)
    if not scan.runs and not tables:
        if scan.problems:
            st.error(f"No readable results under `{runs_dir}`: see the sidebar for why each file was skipped.")
        else:
            st.info(f"No results under `{runs_dir}` yet. Run `autoquant search --budget 24GB --runs-dir {runs_dir}` "
                    "(or `autoquant profile`) first.")
        st.stop()

    run = plans = label = None
    if scan.runs:
        names = [r.name for r in scan.runs]
        run = scan.runs[names.index(st.sidebar.selectbox("search run", names, key="run"))]
        res = run.result
        st.sidebar.markdown(
            f"**model** {res.model}  \n**hardware** {res.hardware}{' (latency estimated)' if res.latency_estimated else ''}  \n"
            f"**batch** {res.batch} · **context** {res.context}  \n**memory budget** {res.budgets.memory_bytes / 1e9:.3g} GB  \n"
            f"**trials** {res.study.trials}")
        plans = plans_with_layers(run)
        if plans:
            label = st.sidebar.selectbox("plan (measured points of the front)", list(plans), key=f"plan:{run.name}")

    tab_front, tab_sens, tab_plan, tab_cmp = st.tabs(["Pareto front", "Sensitivity", "Plan", "Compare runs"])
    with tab_front:
        if run is None:
            st.info("No search run yet: `autoquant search --budget 24GB` writes one.")
        else:
            front.render(run, label)

    with tab_sens:
        choices = list(tables)
        if run is not None and run.sensitivity_path is not None and str(run.sensitivity_path) not in choices:
            choices.insert(0, str(run.sensitivity_path))
        if run is not None and run.sensitivity_path is not None:
            choices.insert(0, choices.pop(choices.index(str(run.sensitivity_path))))  # the run's own first
        if not choices:
            st.info("No sensitivity table yet: `autoquant profile` writes one.")
        else:
            path = st.selectbox("sensitivity table", choices, key="sensitivity")
            try:
                sensitivity.render(data.sensitivity_table(path))
            except UserError as e:
                st.error(str(e))

    with tab_plan:
        if not plans:
            st.info("No plan with per-layer formats in this run (only measured plans keep them).")
        else:
            run_table = None  # the run's own table prices each layer's KL
            if run.sensitivity_path is not None:
                try:
                    run_table = data.sensitivity_table(run.sensitivity_path)
                except UserError as e:
                    st.warning(f"no estimated KL per layer: {e}")
            plan.render(run, label, plans[label], run_table)
            export.render(run, label, plans[label], runs_dir)

    with tab_cmp:
        cat = catalog_path(runs_dir)
        compare.render(scan.runs, run, lambda: None if cat is None else data.catalog(cat))


main()
