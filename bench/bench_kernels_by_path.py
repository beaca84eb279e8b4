"""bench/kernels.py as a module, for the other benchmark scripts: its file name clashes with the
`kernels` package, so it is loaded by path. The shapes and the output check live there."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_kernels", Path(__file__).with_name("kernels.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
