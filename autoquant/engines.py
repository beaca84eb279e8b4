"""Serving engines: where a plan will run, and so which formats a plan may use.

The engine is part of the question a search answers (`--engine` on `search` and `export`): a plan
for vLLM may use only what vLLM's compressed-tensors loader serves, a plan for transformers only
what transformers' loader computes correctly. The search keeps to `engine.loads(fmt)`, the front
and the app name the engine, and export refuses a plan its engine cannot load.

    vllm          compressed-tensors: int4/int8, symmetric or with zero points (WNA16 Marlin)
    transformers  compressed-tensors through transformers: symmetric only (it cannot load packed
                  zero points: llm-compressor issue 1618, compressed-tensors issue 458)
    autoquant     autoquant's own checkpoints and Triton kernels: every int and float format
    llamacpp      one GGUF file: llama.cpp's block formats (q8_0, q4_0, ...) and f16/bf16
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from autoquant.errors import UserError
from autoquant.formats import QuantFormat

DEFAULT_ENGINE = "vllm"


@dataclass(frozen=True)
class Engine:
    name: str
    description: str
    export_format: str  # what `autoquant export` writes for it by default
    _loads: Callable[[QuantFormat], tuple[bool, str]]

    def loads(self, fmt: QuantFormat) -> tuple[bool, str]:
        """(True, "") if this engine serves `fmt`, else (False, why not)."""
        return self._loads(fmt)

    def allowed(self, formats: list[QuantFormat]) -> list[QuantFormat]:
        return [f for f in formats if self.loads(f)[0]]


def _compressed_tensors(fmt: QuantFormat) -> tuple[bool, str]:
    if fmt.is_float or fmt.dtype in ("int4", "int8"):
        return True, ""
    return False, f"{fmt} has no compressed-tensors form"


def _vllm(fmt: QuantFormat) -> tuple[bool, str]:
    return _compressed_tensors(fmt)


def _transformers(fmt: QuantFormat) -> tuple[bool, str]:
    ok, why = _compressed_tensors(fmt)
    if ok and not fmt.is_float and not fmt.symmetric:
        return False, (f"{fmt} has zero points, which transformers cannot load from compressed-tensors "
                       "(llm-compressor issue 1618); use a -sym format or --engine vllm")
    return ok, why


def _autoquant(fmt: QuantFormat) -> tuple[bool, str]:
    if fmt.is_gguf:
        return False, f"{fmt} is a llama.cpp block format, which autoquant's Triton kernels do not run"
    return True, ""


def _llamacpp(fmt: QuantFormat) -> tuple[bool, str]:
    if fmt.is_float or fmt.is_gguf:
        return True, ""
    return False, f"{fmt} has no GGUF form; llama.cpp loads its block formats (q8_0, q5_1, q4_0, ...) and fp16/bf16"


ENGINES: dict[str, Engine] = {
    e.name: e
    for e in (
        Engine("vllm", "vLLM (compressed-tensors checkpoint)", "compressed-tensors", _vllm),
        Engine("transformers", "transformers (compressed-tensors checkpoint)", "compressed-tensors", _transformers),
        Engine("autoquant", "autoquant's own checkpoint and Triton kernels", "autoquant", _autoquant),
        Engine("llamacpp", "llama.cpp (one GGUF file)", "gguf", _llamacpp),
    )
}


def get_engine(name: str) -> Engine:
    try:
        return ENGINES[name.strip().lower()]
    except KeyError:
        raise UserError(f"unknown engine {name!r}; expected one of {', '.join(ENGINES)}") from None
