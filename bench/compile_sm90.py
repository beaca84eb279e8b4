"""Compile every kernel for sm_90 without a GPU and count its SASS instructions.

    python bench/compile_sm90.py [--out FILE]

Each kernel is compiled for a representative set of configs the way a launch on an H100 would
(the same Triton binder specializes the same CPU tensors' dtypes and alignments, for target
`cuda:90`), the cubin assembled by Triton's bundled ptxas and disassembled by its nvdisasm. For
every compile it prints the instruction count and two hashes: of the instruction multiset
(order-free) and of the instruction sequence; `.loc` debug lines and addresses are left out, so
moving a kernel between files changes neither. Run it before and after a refactor that should
not change the kernels: the hashes must match (bench/results/sm90-instructions.json).
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import importlib
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from triton.backends.compiler import GPUTarget
from triton.compiler import compile as triton_compile
from triton.compiler import make_backend
from triton.runtime.jit import create_function_from_signature

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the tree whose kernels are compiled: this checkout, or PYTHONPATH's first
    sys.path.append(str(ROOT))

TARGET = GPUTarget("cuda", 90, 32)
# where each kernel lives (the first module that has it: the split layout, then the single file)
MODULES = {
    "_gemv_words_kernel": ["autoquant.kernels.decode_stream", "autoquant.kernels.wo_matmul"],
    "_gemv_kernel": ["autoquant.kernels.decode_bytes", "autoquant.kernels.wo_matmul"],
    "_small_m_kernel": ["autoquant.kernels.small_m_dot", "autoquant.kernels.wo_matmul"],
    "_large_m_kernel": ["autoquant.kernels.prefill_tiled", "autoquant.kernels.wo_matmul"],
    "_dequant_kernel": ["autoquant.kernels.prefill_dequant", "autoquant.kernels.wo_matmul"],
    "_wgmma_int4_kernel": ["autoquant.kernels.wgmma_int4"],
}
N, K = 4096, 4096


def _kernel(name: str):
    for mod in MODULES[name]:
        try:
            m = importlib.import_module(mod)
        except ImportError:
            continue
        if hasattr(m, name):
            return getattr(m, name)
    raise LookupError(name)


def _tensors(m: int, bits: int, group: int, sym: bool, dtype=torch.float16, bias: bool = False) -> dict:
    g = K // group
    codes = torch.empty(N, K if bits == 8 else K // 2, dtype=torch.uint8)
    z = torch.empty(1 if sym else N * g, dtype=torch.uint8)
    y = torch.empty(m, N, dtype=dtype)
    return {
        "x_ptr": torch.empty(m, K, dtype=dtype), "c_ptr": codes, "s_ptr": torch.empty(N, g, dtype=torch.float16),
        "z_ptr": z, "b_ptr": torch.empty(N, dtype=dtype) if bias else y, "y_ptr": y,
        "M": m, "N": N, "K": K, "GROUP": group, "stride_xm": K, "stride_cn": codes.shape[1], "stride_sn": g,
        "stride_zn": 0 if sym else g, "stride_zg": 0 if sym else 1, "stride_ym": N, "BITS": bits,
        "HAS_BIAS": bias,
    }


def _split_args(m: int) -> dict:
    return {"ws_ptr": torch.empty(8 * m * N, dtype=torch.float32), "lock_ptr": torch.zeros(4096, dtype=torch.int32)}


def _m_bucket(m: int) -> int:
    return min(1 << max(m - 1, 0).bit_length(), 4096)


def cases() -> list[tuple[str, str, dict]]:
    """(kernel, case name, keyword arguments) for every compile."""
    out = []
    for label, bits, group, sym, dtype in [("int4-g128-sym", 4, 128, True, torch.float16),
                                           ("int4-g128-asym", 4, 128, False, torch.float16),
                                           ("int4-g32-asym", 4, 32, False, torch.float16),
                                           ("int8-pc-sym", 8, K, True, torch.float16),
                                           ("int4-g128-asym-bf16", 4, 128, False, torch.bfloat16)]:
        for m, tile, pdl in [(1, dict(BLOCK_N=16, BLOCK_K=1024, NG=8, STAGES=1, num_warps=4), False),
                             (1, dict(BLOCK_N=4, BLOCK_K=1024, NG=8, STAGES=2, num_warps=1), True),
                             (1, dict(BLOCK_N=16, BLOCK_K=1024, NG=8, STAGES=1, EVICT=True, num_warps=4), False),
                             (2, dict(BLOCK_N=16, BLOCK_K=512, NG=4, STAGES=2, num_warps=4), True)]:
            ng = tile["NG"] if group == K else tile["BLOCK_K"] // group
            kw = {**_tensors(m, bits, group, sym, dtype), **_split_args(m), **tile, "NG": ng,
                  "SUB_IS_GROUP": group != K, "M_BUCKET": _m_bucket(m), "OCC": 4, "EVEN_K": True,
                  "USE_ASM": True, "BLOCK_M": m, "SYM": sym, "PDL": pdl, "launch_pdl": pdl, "num_stages": 1}
            out.append(("_gemv_words_kernel", f"{label} M={m} {tile} pdl={pdl}", kw))
        out.append(("_gemv_kernel", f"{label} M=1", {
            **_tensors(1, bits, group, sym, dtype, bias=True), **_split_args(1), "SPLIT_K": 2, "M_BUCKET": 1,
            "BLOCK_N": 32, "BLOCK_K": min(128, group), "EVEN_K": True, "X_PAIRS": True, "USE_ASM": True,
            "num_warps": 4, "num_stages": 1}))
        for m, tile, pdl in [(16, dict(BLOCK_N=64, BLOCK_K=128, NG=1, num_warps=2, num_stages=3), False),
                             (16, dict(BLOCK_N=64, BLOCK_K=256, NG=2, num_warps=2, num_stages=4), True),
                             (4, dict(BLOCK_N=32, BLOCK_K=128, NG=1, num_warps=1, num_stages=4), True)]:
            ng = tile["NG"]
            bk = tile["BLOCK_K"] if group == K else min(tile["BLOCK_K"], group * ng)
            sz_pairs = ng == 2 and group * 2 == bk
            out.append(("_small_m_kernel", f"{label} M={m} {tile} pdl={pdl}", {
                **_tensors(m, bits, group, sym, dtype), **_split_args(m), **tile, "BLOCK_K": bk, "SPLIT_K": 1,
                "M_BUCKET": _m_bucket(m), "BLOCK_M": max(4, _m_bucket(m)), "EVEN_K": True, "X_PAIRS": True,
                "USE_ASM": True, "SYM": sym, "SZ_PAIRS": sz_pairs, "PDL": pdl, "launch_pdl": pdl}))
        out.append(("_large_m_kernel", f"{label} M=256", {
            **_tensors(256, bits, group, sym, dtype, bias=True), "M_BUCKET": 256, "BLOCK_M": 128, "BLOCK_N": 128,
            "BLOCK_K": min(64, group), "EVEN_K": True, "USE_ASM": True, "num_warps": 8, "num_stages": 3}))
        t = _tensors(2048, bits, group, sym, dtype)
        out.append(("_dequant_kernel", f"{label}", {
            "c_ptr": t["c_ptr"], "s_ptr": t["s_ptr"], "z_ptr": t["z_ptr"], "w_ptr": torch.empty(N, K, dtype=dtype),
            "N": N, "K": K, "GROUP": group, "stride_cn": t["stride_cn"], "stride_sn": t["stride_sn"],
            "stride_zn": t["stride_zn"], "stride_zg": t["stride_zg"], "stride_wn": K, "BITS": bits,
            "BLOCK_N": 64, "BLOCK_K": min(128, group), "USE_ASM": True, "num_warps": 4}))
    return out


def wgmma_cases() -> list[tuple[str, str, dict]]:
    from autoquant.kernels import wgmma_int4 as wg

    if wg.gluon is None:
        return []
    gl, desc = wg.gl, wg.TensorDescriptor
    bn, bm, bk = wg.BLOCK
    out = []
    for sym in (True, False):
        m = 2048
        x = torch.empty(m, K, dtype=torch.float16)
        codes = torch.empty(N, K // 2, dtype=torch.uint8)
        y = torch.empty(m, N, dtype=torch.float16)
        scales = torch.empty(N, K // 128, dtype=torch.float16)
        zeros = codes if sym else torch.empty(N, K // 128, dtype=torch.uint8)
        kw = {
            "x_desc": desc.from_tensor(x, [bm, bk], gl.NVMMASharedLayout.get_default_for([bm, bk], gl.float16)),
            "c_desc": desc.from_tensor(codes, [bn, bk // 2],
                                       gl.NVMMASharedLayout.get_default_for([bn, bk // 2], gl.uint8)),
            "y_desc": desc.from_tensor(y, [bm, bn], gl.NVMMASharedLayout.get_default_for([bm, bn], gl.float16)),
            "s_ptr": scales, "z_ptr": zeros, "b_ptr": scales, "M": m, "N": N, "K": K, "GROUP": 128,
            "stride_sn": scales.stride(0), "stride_zn": 0 if sym else zeros.stride(0), "stride_zg": 1,
            "SYM": sym, "HAS_BIAS": False, "STAGES": wg.STAGES, "GROUP_M": 8, "PAIRED": True, "num_warps": bn // 16,
        }
        out.append(("_wgmma_int4_kernel", f"int4-g128-{'sym' if sym else 'asym'} M={m}", kw))
    return out


def compile_sm90(fn, kwargs: dict):
    """Triton's own launch path up to the compile, with an sm_90 target instead of the device's."""
    backend = make_backend(TARGET)
    binder = create_function_from_signature(fn.signature, fn.params, backend)
    kwargs = {**kwargs, "debug": False}
    bound_args, specialization, options = binder(**kwargs)
    options, signature, constexprs, attrs = fn._pack_args(backend, kwargs, bound_args, specialization, options)
    src_type = type(fn).__dict__.get("ASTSource") or _ast_source(fn)
    return triton_compile(src_type(fn, signature, constexprs, attrs), target=TARGET, options=options.__dict__)


def _ast_source(fn):
    if type(fn).__module__.startswith("triton.experimental.gluon"):
        from triton.experimental.gluon._runtime import GluonASTSource
        return GluonASTSource
    from triton.compiler import ASTSource
    return ASTSource


_SASS = re.compile(r"/\*[0-9a-f]{4,}\*/\s+(.*?)\s*;")


def sass(cubin: bytes) -> list[str]:
    nvdisasm = Path(sys.modules["triton"].__file__).parent / "backends" / "nvidia" / "bin" / "nvdisasm"
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        text = subprocess.run([str(nvdisasm), "-c", f.name], check=True, capture_output=True, text=True).stdout
    return [" ".join(m.group(1).split()) for m in _SASS.finditer(text)]


def _digest(items) -> str:
    return hashlib.sha256("\n".join(items).encode()).hexdigest()[:16]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="write the results as JSON here")
    args = ap.parse_args()
    os.environ.pop("TRITON_INTERPRET", None)
    results, per_kernel = [], collections.defaultdict(lambda: [0, []])
    for kernel, case, kwargs in cases() + wgmma_cases():
        ck = compile_sm90(_kernel(kernel), kwargs)
        instrs = sass(ck.asm["cubin"])
        rec = {"kernel": kernel, "case": case, "sass_instructions": len(instrs),
               "sass_multiset_sha": _digest(sorted(instrs)), "sass_sequence_sha": _digest(instrs)}
        results.append(rec)
        per_kernel[kernel][0] += len(instrs)
        per_kernel[kernel][1].append(rec["sass_sequence_sha"])
        print(f"{kernel:20s} {case:80s} {len(instrs):6d} {rec['sass_multiset_sha']} {rec['sass_sequence_sha']}",
              flush=True)
    summary = {k: {"compiles": len(v[1]), "sass_instructions": v[0], "sha": _digest(v[1])}
               for k, v in per_kernel.items()}
    for k, v in summary.items():
        print(f"{k:20s} {v['compiles']:3d} compiles {v['sass_instructions']:7d} instructions  {v['sha']}")
    if args.out:
        args.out.write_text(json.dumps({"target": "cuda:90", "cases": results, "kernels": summary}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
