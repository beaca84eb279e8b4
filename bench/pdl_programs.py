"""Decode (M = 1) in CUDA graphs with and without programmatic dependent launch, per format and
shape, with the decode stream's program count: what PDL_MIN_PROGRAMS_PER_SM in
kernels/wo_matmul.py rests on (GPU; results/kernel-variants-h100-pdl-programs.txt).

    python bench/pdl_programs.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from autoquant.formats import QuantFormat
from autoquant.kernels.timing import time_in_graph, weight_clones, weight_copies
from autoquant.quant import quantize
from autoquant.kernels import decode_pdl, wo_matmul

WM = sys.modules["autoquant.kernels.wo_matmul"]  # the module (the package exports the function)
SHAPES = [(4096, 14336), (14336, 4096), (1024, 4096), (4096, 4096)]
FORMATS = ["int4-g32-asym", "int4-g64-sym", "int8-g32-sym", "int4-g128-asym", "int4-g128-sym"]


def main() -> None:
    sms = WM._num_sms()
    for n, k in SHAPES:
        torch.manual_seed(0)
        w16 = torch.randn(n, k, dtype=torch.float16, device="cuda") * 0.02
        x = torch.randn(1, k, dtype=torch.float16, device="cuda")
        for name in FORMATS:
            fmt = QuantFormat.parse(name)
            qw = quantize(w16, fmt)
            copies = weight_clones(qw, weight_copies(fmt.storage_bytes(n, k)))
            wo_matmul(x, qw)  # tune
            cfg = WM.tuned_config(1).all_kwargs()
            calls = [lambda q=q, x=x: wo_matmul(x, q) for q in copies]
            on = time_in_graph(calls) * 1e6
            with decode_pdl(False):
                off = time_in_graph(calls) * 1e6
            on2 = time_in_graph(calls) * 1e6
            programs = None
            if "OCC" in cfg:  # the decode word kernel (the byte GEMV has no stream)
                want = WM.stream_programs(n, cfg["BLOCK_N"], cfg["OCC"], sms)
                programs = WM.stream_parts(n, k, cfg["BLOCK_N"], cfg["BLOCK_K"], want)[0]
            print(f"{n}x{k} {name}: pdl {on:.1f}/{on2:.1f} no-pdl {off:.1f} us  programs {programs} [{cfg}]",
                  flush=True)
            del copies


if __name__ == "__main__":
    main()
