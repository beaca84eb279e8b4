"""Import first in every kernel test module: the tests run the real Triton kernels, on a GPU
when there is one, else on the CPU under the Triton interpreter (TRITON_INTERPRET=1, set here
before `kernels` is imported). A module, not a conftest.py: a conftest in a subdirectory would
shadow the root conftest that other test modules import by name.
"""

from __future__ import annotations

import importlib
import os
import sys

import torch

if not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"

import numpy as np  # noqa: E402
import triton.language as tl  # noqa: E402


def _patch_interpreter_bf16_dot() -> None:
    """Triton 3.9's interpreter multiplies bf16 dot operands as their raw uint16 bits
    (`InterpreterBuilder.create_dot`); upcast them to fp32 first. The kernels are unchanged."""
    from triton.runtime import interpreter

    builder = interpreter.InterpreterBuilder
    if getattr(builder.create_dot, "_autoquant_patched", False):
        return
    original = builder.create_dot

    def create_dot(self, a, b, d, input_precision, max_num_imprecise_acc):
        def up(h):
            if h.dtype.scalar == tl.bfloat16:
                data = interpreter._convert_float(h.data, tl.bfloat16, tl.float32, None).view(np.float32)
                return interpreter.TensorHandle(data.reshape(h.data.shape), tl.float32)
            return h

        return original(self, up(a), up(b), d, input_precision, max_num_imprecise_acc)

    create_dot._autoquant_patched = True
    builder.create_dot = create_dot


if os.environ.get("TRITON_INTERPRET") == "1":
    _patch_interpreter_bf16_dot()
    # If another test module imported `kernels` before this conftest set the variable,
    # its kernels were compiled for a GPU: rebuild them for the interpreter.
    # Reloaded in place, leaves first: the path modules' objects (held by the selector) then hold
    # interpreted kernels; launch_state and ops are not reloaded (a custom op registers once).
    mod = sys.modules.get("autoquant.kernels.small_m_dot")
    if mod is not None and type(mod._small_m_kernel).__name__ != "InterpretedFunction":
        for name in ("tile_ops", "decode_words", "decode_stream", "decode_bytes", "small_m_dot", "prefill_tiled",
                     "prefill_dequant"):
            importlib.reload(sys.modules[f"autoquant.kernels.{name}"])
        importlib.reload(sys.modules["autoquant.kernels"])


DEVICE = "cpu" if os.environ.get("TRITON_INTERPRET") == "1" else "cuda"


def relative_error(y, x, qw, b=None) -> float:
    """||y - ref|| / ||ref|| against a float64 reference x @ dequantize(qw)^T (+ b); asserts every
    output was written (outputs start as NaN)."""
    from autoquant.quant import dequantize

    ref = x.double().cpu() @ dequantize(qw.to("cpu"), torch.float64).t()
    if b is not None:
        ref += b.double().cpu()
    got = y.double().cpu()
    assert not got.isnan().any(), f"{int(got.isnan().sum())} outputs never written"
    return ((got - ref).norm() / ref.norm()).item()
