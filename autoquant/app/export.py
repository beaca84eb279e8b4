"""Export the chosen plan: quantize the run's model under it, write the checkpoint, zip it for download."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import streamlit as st

from autoquant.errors import UserError
from autoquant.plan import Plan
from autoquant.runs import SearchRun

# format shown -> what writes it; the one format autoquant.export writes today
EXPORT_FORMATS = {"autoquant checkpoint (safetensors + plan)": "autoquant"}


def export_plan_dir(run: SearchRun, plan: Plan, out_dir: Path, fmt: str) -> Path:
    """The one call into the exporters (the app's only export code)."""
    from autoquant.export import export_checkpoint
    from autoquant.models import resolve_model

    return export_checkpoint(resolve_model(run.result.model_spec), plan, out_dir)


def render(run: SearchRun, label: str, plan: Plan, runs_dir: str) -> None:
    st.markdown("**Export a quantized checkpoint**")
    fmt = st.selectbox("export format", list(EXPORT_FORMATS), key="export_format")
    default = Path(runs_dir) / "export" / f"{run.path.name}-{label.replace(' ', '-')}"
    out_dir = Path(st.text_input("checkpoint directory", value=str(default), key="export_dir"))
    key = f"{run.path}|{label}"  # an export belongs to one plan of one run
    if st.button("Export", key="export_button"):
        try:
            with st.spinner(f"quantizing {run.result.model} and writing {out_dir} ..."):
                path = export_plan_dir(run, plan, out_dir, EXPORT_FORMATS[fmt])
                archive = shutil.make_archive(str(Path(tempfile.mkdtemp()) / path.name), "zip", path)
            st.session_state.setdefault("exports", {})[key] = (str(path), archive)
        except UserError as e:
            st.error(str(e))
    done = st.session_state.get("exports", {}).get(key)
    if done:
        path, archive = done
        st.success(f"wrote {path}; load it with autoquant.export.load_quantized('{path}')")
        st.download_button("Download checkpoint (zip)", Path(archive).read_bytes(), file_name=Path(archive).name,
                           mime="application/zip", key="export_download")
