"""Export the chosen plan: quantize the run's model under it, write the checkpoint, zip it for download."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import streamlit as st

from autoquant.errors import UserError
from autoquant.plan import Plan
from autoquant.runs import SearchRun

def export_plan_dir(run: SearchRun, plan: Plan, out_dir: Path, engine: str, fmt: str | None) -> Path:
    """The one call into the exporters (the app's only export code): what `autoquant export` does."""
    from autoquant.export import export_plan

    return export_plan(plan, out_dir, engine=engine, fmt=fmt, model=run.result.model_spec,
                       command=f"autoquant export --plan plan.json --engine {engine} --out {out_dir}")


def render(run: SearchRun, label: str, plan: Plan, runs_dir: str) -> None:
    st.markdown("**Export a quantized checkpoint**")
    from autoquant.engines import ENGINES

    engines = list(ENGINES)
    planned = plan.metadata.get("engine") or run.result.engine
    st.caption(f"this plan was searched for {planned}; another engine may refuse it (export names the layer)")
    engine = st.selectbox("serving engine", engines, index=engines.index(planned) if planned in engines else 0,
                          key="export_engine")
    fmt = None  # the engine's own format: compressed-tensors for vllm/transformers, autoquant's for autoquant
    default = Path(runs_dir) / "export" / f"{run.path.name}-{label.replace(' ', '-')}"
    out_dir = Path(st.text_input("checkpoint directory", value=str(default), key="export_dir"))
    key = f"{run.path}|{label}|{engine}"  # an export belongs to one plan of one run, for one engine
    if st.button("Export", key="export_button"):
        try:
            with st.spinner(f"quantizing {run.result.model} and writing {out_dir} ..."):
                path = export_plan_dir(run, plan, out_dir, engine, fmt)
                archive = shutil.make_archive(str(Path(tempfile.mkdtemp()) / path.name), "zip", path)
            st.session_state.setdefault("exports", {})[key] = (str(path), archive)
        except UserError as e:
            st.error(str(e))
    done = st.session_state.get("exports", {}).get(key)
    if done:
        path, archive = done
        st.success(f"wrote {path}: its README.md says how to load it")
        st.download_button("Download checkpoint (zip)", Path(archive).read_bytes(), file_name=Path(archive).name,
                           mime="application/zip", key="export_download")
