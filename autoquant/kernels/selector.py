"""Which kernel path runs a matmul problem, and why each other path does not.

The paths are tried in order and the first whose `can_run` accepts the problem runs it, as in
vLLM's `choose_mp_linear_kernel`. The order encodes the preference: the GEMM paths for many
tokens (fused wgmma on Hopper where it pays off, else dequantize + cuBLAS), the tiled tl.dot
kernel for 17 to DEQUANT_MIN_M - 1 tokens, the decode stream for 1-2 tokens, the small-M tl.dot
kernel for up to 16, the byte GEMV for one token the stream cannot read as words, and the CPU
reference where no Triton kernel can run. An explicit config names its path by its type
(`StreamConfig`, `DotConfig`, `ByteGemvConfig`, `TiledConfig`); that path must then accept it.

    path = choose(problem)                      # the module of the path that runs it
    for name, why in explain(problem).items():  # every path: "" where it would run, else why not
        ...
"""

from __future__ import annotations

from types import ModuleType

from autoquant.kernels import (
    decode_bytes, decode_stream, prefill_dequant, prefill_tiled, reference, small_m_dot, wgmma_int4,
)
from autoquant.kernels.problem import MatmulProblem

PATHS: tuple[ModuleType, ...] = (
    wgmma_int4, prefill_dequant, prefill_tiled, decode_stream, small_m_dot, decode_bytes, reference,
)


def _verdict(path: ModuleType, problem: MatmulProblem, config: object | None) -> tuple[bool, str]:
    if config is not None and (path.CONFIG is None or not isinstance(config, path.CONFIG)):
        return False, f"the config is a {type(config).__name__}"
    return path.can_run(problem, config)


def choose(problem: MatmulProblem, config: object | None = None) -> ModuleType:
    """The first path in PATHS that runs the problem (with `config`, the path it names)."""
    if config is not None and not any(p.CONFIG is not None and isinstance(config, p.CONFIG) for p in PATHS):
        names = ", ".join(p.CONFIG.__name__ for p in PATHS if p.CONFIG is not None)
        raise TypeError(f"config must be one of {names}, not {type(config).__name__}")
    for path in PATHS:
        if _verdict(path, problem, config)[0]:
            return path
    reasons = "; ".join(f"{name}: {why}" for name, why in explain(problem, config).items())
    raise ValueError(f"no kernel path runs this problem ({reasons})")


def explain(problem: MatmulProblem, config: object | None = None) -> dict[str, str]:
    """Every path's answer for the problem, by name: "" for the one `choose` takes, otherwise why it
    does not run it (a path that could, but comes after the chosen one, says so)."""
    out, chosen = {}, None
    for path in PATHS:
        ok, why = _verdict(path, problem, config)
        if ok and chosen is None:
            chosen, why = path, ""
        elif ok:
            why = f"could run it, but {chosen.NAME} comes first"
        out[path.NAME] = why
    return out
