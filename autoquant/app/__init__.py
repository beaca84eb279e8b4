"""The Streamlit app: a run's Pareto front, the sensitivity heatmap, a plan per layer, runs side
by side, and export. `autoquant app` starts it; `streamlit run app.py` does too from a checkout.

    main.py         the page: sidebar (runs directory, run, plan) and one tab per view
    data.py         cached file reads (st.cache_data, keyed on each file's mtime and size)
    front.py        the Pareto front: memory x quality, latency as colour and its own chart
    sensitivity.py  the per-layer sensitivity heatmap
    plan.py         one plan's formats by block, with bytes and estimated KL; plan download
    export.py       the chosen plan exported, zipped for download
    compare.py      several runs (budgets, GPUs) and the schedule catalog side by side

Everything shown is read from files the search and the profiler wrote (autoquant.runs reads
them through autoquant.runfiles); the app computes nothing it cannot show the source of.
"""

from pathlib import Path

PAGE = Path(__file__).with_name("main.py")  # the script `streamlit run` is given
