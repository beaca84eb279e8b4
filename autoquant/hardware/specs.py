"""Built-in GPU specs: what the roofline model needs when no profile has been measured.

Datasheet numbers (dense, no sparsity): memory, DRAM bandwidth and the 16-bit tensor-core
rate with fp32 accumulation, the mode the kernels and cuBLAS use. They are peaks, not what
code reaches; `roofline.py` derates them and labels every result "estimated".
"""

from __future__ import annotations

from dataclasses import dataclass

from autoquant.errors import UserError

GB = 10**9
TB = 10**12


@dataclass(frozen=True)
class GPUSpec:
    name: str  # canonical short name, as `--hardware` takes it
    full_name: str
    memory_bytes: int
    bandwidth: float  # DRAM bytes/s
    fp16_flops: float  # dense fp16/bf16 tensor FLOP/s, fp32 accumulate
    sms: int
    match: tuple[str, ...]  # substrings of torch.cuda.get_device_name(), lower-case, all required

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "full_name": self.full_name,
            "memory_bytes": self.memory_bytes,
            "bandwidth": self.bandwidth,
            "fp16_flops": self.fp16_flops,
            "sms": self.sms,
        }


# Most specific first: matching stops at the first spec whose substrings all occur.
BUILTIN_SPECS: tuple[GPUSpec, ...] = (
    GPUSpec("h100-pcie", "NVIDIA H100 PCIe 80GB", 80 * GB, 2.0 * TB, 756 * TB, 114, ("h100", "pcie")),
    GPUSpec("h100", "NVIDIA H100 SXM5 80GB HBM3", 80 * GB, 3.35 * TB, 989 * TB, 132, ("h100",)),
    GPUSpec("h200", "NVIDIA H200 SXM 141GB HBM3e", 141 * GB, 4.8 * TB, 989 * TB, 132, ("h200",)),
    GPUSpec("b200", "NVIDIA B200 180GB HBM3e", 180 * GB, 8.0 * TB, 2250 * TB, 148, ("b200",)),
    GPUSpec("a100-40gb", "NVIDIA A100 SXM4 40GB", 40 * GB, 1.555 * TB, 312 * TB, 108, ("a100", "40gb")),
    GPUSpec("a100", "NVIDIA A100 SXM4 80GB", 80 * GB, 2.039 * TB, 312 * TB, 108, ("a100",)),
    GPUSpec("l40s", "NVIDIA L40S 48GB", 48 * GB, 864 * GB, 362 * TB, 142, ("l40s",)),
    GPUSpec("l4", "NVIDIA L4 24GB", 24 * GB, 300 * GB, 121 * TB, 58, ("l4",)),
    GPUSpec("rtx4090", "NVIDIA GeForce RTX 4090 24GB", 24 * GB, 1008 * GB, 165 * TB, 128, ("4090",)),
)
_BY_NAME = {s.name: s for s in BUILTIN_SPECS}
_ALIASES = {"h100-sxm": "h100", "4090": "rtx4090", "rtx-4090": "rtx4090", "a100-80gb": "a100", "h100-80gb": "h100"}


def spec_names() -> list[str]:
    return [s.name for s in BUILTIN_SPECS]


def get_spec(name: str) -> GPUSpec:
    """A built-in spec by name, case-insensitive; UserError listing the known names."""
    key = name.strip().lower().replace("_", "-").replace(" ", "-")
    key = _ALIASES.get(key, key)
    spec = _BY_NAME.get(key)
    if spec is None:
        raise UserError(f"unknown GPU {name!r}; known: {', '.join(spec_names())} (or a profile JSON path)")
    return spec


def match_spec(device_name: str) -> GPUSpec | None:
    """The built-in spec for a device name such as 'NVIDIA H100 80GB HBM3', if any."""
    low = device_name.lower()
    for spec in BUILTIN_SPECS:
        if spec.name == "l4" and "l40" in low:
            continue  # 'l4' is a substring of 'l40s'
        if all(m in low for m in spec.match):
            return spec
    return None
