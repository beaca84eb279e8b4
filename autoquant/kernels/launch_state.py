"""Everything the launcher remembers between calls, in one object that tests and benchmarks pass in.

* PDL choices: programmatic dependent launch (PDL) acts only inside CUDA graph capture, between
  consecutive launches, so whether a launch in capture uses it is decided at the eager launch
  before it (the graph picks) and looked up by the launch's signature in capture.
* Scratch tensors: split-K arrival counters and the symmetric formats' fixed zero-point byte,
  one a device.
* What the last launch did (its config, whether it used PDL, the prefill path), for benchmarks.

`DEFAULT` is the state `wo_matmul` uses when given none; a test builds its own `LaunchState` and
passes it (`state=`), so nothing is monkeypatched and nothing leaks between tests.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
import triton

from autoquant.kernels import graph_pick


@dataclass
class LaunchState:
    # PDL for decode launches in CUDA graph capture (sm_90+); the benchmark times both settings
    decode_pdl: bool = True
    # PDL only with at least this many programs a SM: with one or two, the next grid's programs,
    # placed while this one still runs, crowd some SMs and leave others idle, and the decode
    # stream's equal shares then run slower than without PDL (docs/kernels.md)
    pdl_min_programs_per_sm: int = 3
    # times candidate (config, PDL) pairs back to back in a CUDA graph (graph_pick.pick's signature)
    graph_pick: Callable[..., dict] = graph_pick.pick
    pdl_chain: dict = field(default_factory=dict)  # decode stream: launch signature -> PDL in capture
    pdl_warm: set = field(default_factory=set)  # decode stream: PDL variants compiled (capture cannot)
    dot_pick: dict = field(default_factory=dict)  # small-M tl.dot: launch signature -> (config, PDL)
    # last launch: "decode" (its triton.Config), "decode_pdl" (bool), "prefill" (config or path name)
    last: dict = field(default_factory=dict)
    locks: dict[torch.device, torch.Tensor] = field(default_factory=dict)
    sym_zero: dict[tuple[torch.device, int], torch.Tensor] = field(default_factory=dict)

    def pdl_capable(self, x: torch.Tensor, interpreting: bool) -> bool:
        """Whether decode launches on x's device may use PDL (in capture, with enough programs)."""
        return (self.decode_pdl and x.is_cuda and not interpreting
                and torch.cuda.get_device_capability(x.device)[0] >= 9)

    def split_k_locks(self, device: torch.device, n: int) -> torch.Tensor:
        """Split-K arrival counters, zero between launches (the last program resets its own)."""
        t = self.locks.get(device)
        if t is None or t.numel() < n:
            t = torch.zeros(max(n, 4096), dtype=torch.int32, device=device)
            self.locks[device] = t
        return t

    def sym_zero_byte(self, device: torch.device, bits: int) -> torch.Tensor:
        """One byte holding a symmetric format's fixed zero-point 2^(bits-1), read with stride 0."""
        key = (device, bits)
        t = self.sym_zero.get(key)
        if t is None:
            t = torch.full((1,), 1 << (bits - 1), dtype=torch.uint8, device=device)
            self.sym_zero[key] = t
        return t

    def last_decode_pdl(self) -> bool:
        """Whether the last decode launch (M <= 16) used programmatic dependent launch."""
        return bool(self.last.get("decode_pdl", False))

    def tuned_config(self, m: int, small_m_max: int = 16) -> triton.Config | str | None:
        """The config the autotuner picked on the last tuned launch for this regime (benchmark
        records); for prefill sizes that run a GEMM path, its name ("wgmma_int4", "dequant+cublas")."""
        return self.last.get("decode" if m <= small_m_max else "prefill")


DEFAULT = LaunchState()


@contextlib.contextmanager
def decode_pdl(enabled: bool, state: LaunchState = DEFAULT) -> Iterator[None]:
    """Within the block, decode launches in CUDA graph capture use PDL or not (on by default)."""
    before, state.decode_pdl = state.decode_pdl, enabled
    try:
        yield
    finally:
        state.decode_pdl = before


def launch_sig(args: tuple, common: dict) -> tuple:
    """A decode launch's problem and its tensors' alignments (what its compiled variant depends on):
    the key of the choices made at the eager launch for capture. Built only where PDL can apply,
    as it is Python on every decode call."""
    return tuple((a.dtype, a.data_ptr() % 16) for a in args), tuple(sorted(common.items()))


def graph_pick_key(kernel, sig: tuple, best: triton.Config) -> list[str]:
    """What a graph pick is cached under: the problem, the tuner's pick and what compiled it."""
    return [triton.__version__, torch.cuda.get_device_name(), kernel.cache_key, str(sig), str(best)]
