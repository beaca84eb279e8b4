"""Built-in GPU specs: what the roofline model needs when no profile has been measured.

Datasheet numbers (dense, no sparsity): memory, DRAM bandwidth and the 16-bit tensor-core
rate with fp32 accumulation, the mode the kernels and cuBLAS use. They are peaks, not what
code reaches; `roofline.py` derates them and labels every result "estimated".

Adding a GPU is one entry in BUILTIN_SPECS (with the source of its figures), or a profile JSON
measured on the card (`autoquant hardware profile`), which beats any datasheet.
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
    sms: int  # streaming multiprocessors (NVIDIA) or compute units (AMD)
    match: tuple[str, ...]  # substrings of torch.cuda.get_device_name(), lower-case, all required
    source: str  # where memory, bandwidth and the fp16 peak come from
    note: str = ""  # what to keep in mind when trusting its estimates

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "full_name": self.full_name,
            "memory_bytes": self.memory_bytes,
            "bandwidth": self.bandwidth,
            "fp16_flops": self.fp16_flops,
            "sms": self.sms,
            "source": self.source,
            "note": self.note,
        }


# The datasheets quote tensor rates "with sparsity"; the dense rate used here is half of that.
_NV_AMPERE = "NVIDIA A100 Tensor Core GPU datasheet (2021)"
_NV_HOPPER = "NVIDIA H100 Tensor Core GPU datasheet (2023)"
_NV_H200 = "NVIDIA H200 Tensor Core GPU datasheet (2024)"
_NV_BLACKWELL = ("NVIDIA Blackwell architecture technical brief, pp. 19-20: 2.25 PFLOPS dense bf16, 8 TB/s (as cited "
                 "by pytorch/ao torchao/testing/training/roofline_utils.py); 148 SMs and 178.35 GB as the CUDA driver "
                 "reports them (pytorch/ao PR 4002); 180 GB as MLPerf Inference v6.0 names it (B200-SXM-180GB)")
_NV_ADA_DC = "NVIDIA {} datasheet (2023)"
_NV_ADA = "NVIDIA Ada Lovelace GPU architecture whitepaper v2.1, appendix A (fp16 tensor, fp32 accumulate)"
_NV_RTX_BW = ("NVIDIA RTX Blackwell GPU architecture whitepaper: 209.5 TFLOPS bf16 with fp32 accumulate and "
              "1792 GB/s (as cited by pytorch/ao torchao/testing/training/roofline_utils.py); 170 SMs and 32 GB as "
              "torch.cuda.get_device_properties reports them (dnakov/consumer-mamf on Hugging Face)")
_AMD_MI300X = ("AMD Instinct MI300X data sheet, p. 1: 1307 TFLOPS bf16, 5.3 TB/s (as cited by pytorch/ao "
               "torchao/testing/training/roofline_utils.py)")
_AMD_MI325X = ("256 GB and 304 CUs: ROCm documentation, AMD GPU specifications (rocm.docs.amd.com "
               "reference/gpu-specs); 6.0 TB/s and 1307 TFLOPS fp16: a cloud vendor's page (docs.vultr.com, "
               "ROCm hardware requirements), not checked against AMD's own datasheet")
_NOT_RUN_ON_AMD = ("this project's Triton kernels were never timed on ROCm: the roofline's efficiencies "
                   "come from an H100")
_GEFORCE = "consumer card: fp32-accumulate tensor rate is half the fp16-accumulate one"

# Most specific first: matching stops at the first spec whose substrings all occur.
BUILTIN_SPECS: tuple[GPUSpec, ...] = (
    GPUSpec("h100-pcie", "NVIDIA H100 PCIe 80GB", 80 * GB, 2.0 * TB, 756 * TB, 114, ("h100", "pcie"), _NV_HOPPER),
    GPUSpec("h100-nvl", "NVIDIA H100 NVL 94GB", 94 * GB, 3.9 * TB, 835 * TB, 132, ("h100", "nvl"), _NV_HOPPER),
    GPUSpec("h100", "NVIDIA H100 SXM5 80GB HBM3", 80 * GB, 3.35 * TB, 989 * TB, 132, ("h100",), _NV_HOPPER),
    GPUSpec("h200", "NVIDIA H200 SXM 141GB HBM3e", 141 * GB, 4.8 * TB, 989 * TB, 132, ("h200",), _NV_H200),
    GPUSpec("b200", "NVIDIA B200 180GB HBM3e", 180 * GB, 8.0 * TB, 2250 * TB, 148, ("b200",), _NV_BLACKWELL,
            "the driver reports a 7680-bit bus at 3996 MHz, 7.67 TB/s (pytorch/ao PR 4002): the 8 TB/s peak may be "
            "4% high"),
    GPUSpec("a100-40gb", "NVIDIA A100 SXM4 40GB", 40 * GB, 1.555 * TB, 312 * TB, 108, ("a100", "40gb"), _NV_AMPERE),
    GPUSpec("a100", "NVIDIA A100 SXM4 80GB", 80 * GB, 2.039 * TB, 312 * TB, 108, ("a100",), _NV_AMPERE),
    GPUSpec("l40s", "NVIDIA L40S 48GB", 48 * GB, 864 * GB, 362 * TB, 142, ("l40s",), _NV_ADA_DC.format("L40S")),
    GPUSpec("l4", "NVIDIA L4 24GB", 24 * GB, 300 * GB, 121 * TB, 58, ("l4",), _NV_ADA_DC.format("L4")),
    GPUSpec("rtx4090", "NVIDIA GeForce RTX 4090 24GB", 24 * GB, 1008 * GB, 165 * TB, 128, ("4090",), _NV_ADA,
            _GEFORCE),
    GPUSpec("rtx5090", "NVIDIA GeForce RTX 5090 32GB", 32 * GB, 1792 * GB, 209.5 * TB, 170, ("5090",), _NV_RTX_BW,
            _GEFORCE),
    GPUSpec("mi300x", "AMD Instinct MI300X 192GB HBM3", 192 * GB, 5.3 * TB, 1307 * TB, 304, ("mi300x",),
            _AMD_MI300X, _NOT_RUN_ON_AMD),
    GPUSpec("mi325x", "AMD Instinct MI325X 256GB HBM3e", 256 * GB, 6.0 * TB, 1307 * TB, 304, ("mi325x",),
            _AMD_MI325X, _NOT_RUN_ON_AMD),
)
_BY_NAME = {s.name: s for s in BUILTIN_SPECS}
_ALIASES = {"h100-sxm": "h100", "4090": "rtx4090", "rtx-4090": "rtx4090", "a100-80gb": "a100", "h100-80gb": "h100",
            "5090": "rtx5090", "rtx-5090": "rtx5090", "h200-sxm": "h200"}


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
