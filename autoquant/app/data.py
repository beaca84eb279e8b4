"""File reads for the app, cached per file version: the cache key is (path, mtime, size), so a
re-run of a search (which rewrites front.json atomically) shows up on the next rerun, and a
click that changes nothing re-reads nothing."""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from autoquant.runfiles import CatalogTarget, RunFileError, read_catalog, read_sensitivity
from autoquant.runs import RunScan, SearchRun, front_files, load_run


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        s = os.stat(path)
    except OSError:  # removed since the directory was listed
        return None
    return s.st_mtime_ns, s.st_size


@st.cache_data(show_spinner=False, max_entries=512)
def _run(path: str, stamp: tuple[int, int]) -> SearchRun | RunFileError:
    try:
        return load_run(Path(path))
    except RunFileError as e:
        return e


def scan_runs(root: str) -> RunScan:
    """Every run under `root` (newest first) and one line for each file that could not be read."""
    scan = RunScan()
    for front in front_files(root):
        stamp = _stamp(front)
        if stamp is None:
            continue
        got = _run(str(front), stamp)
        if isinstance(got, RunFileError):
            scan.problems.append(str(got))
        else:
            scan.runs.append(got)
    return scan


@st.cache_data(show_spinner=False, max_entries=64)
def _sensitivity(path: str, stamp: tuple[int, int] | None):
    try:
        return read_sensitivity(path)
    except RunFileError as e:
        return e


def sensitivity_table(path: str | Path):
    """The SensitivityTable at `path`; raises RunFileError (one line) when it cannot be read."""
    got = _sensitivity(str(path), _stamp(Path(path)))
    if isinstance(got, RunFileError):
        raise got
    return got


@st.cache_data(show_spinner=False, max_entries=8)
def _catalog(path: str, stamp: tuple[int, int] | None) -> list[CatalogTarget] | RunFileError:
    try:
        return read_catalog(path)
    except RunFileError as e:
        return e


def catalog(path: str | Path) -> list[CatalogTarget]:
    got = _catalog(str(path), _stamp(Path(path)))
    if isinstance(got, RunFileError):
        raise got
    return got
