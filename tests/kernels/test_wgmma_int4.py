"""The fused int4 prefill kernel for Hopper (kernels/wgmma_int4.py).

Gluon has no interpreter: on the CPU (CI) only the dispatch rule runs; on an sm_90 GPU the
kernel is checked against a float64 reference on every int4 format it takes (outputs poisoned
with NaN first, so an element never written fails), and wo_matmul is checked to route to it.
"""

from __future__ import annotations

import kernel_env  # interpreter setup before `kernels` is imported
import pytest
import torch

from autoquant.formats import QuantFormat
from autoquant.quant import dequantize, quantize
from autoquant.kernels import LaunchState, wgmma_int4, wo_matmul

DEVICE = kernel_env.DEVICE
HOPPER = DEVICE == "cuda" and torch.cuda.get_device_capability()[0] == 9
_gen = torch.Generator().manual_seed(77)


def test_tiles_and_dispatch_rule() -> None:
    bn, bm, _ = wgmma_int4.BLOCK
    assert wgmma_int4.tiles(2048, 4096) == (2048 // bm) * (4096 // bn)
    assert wgmma_int4.tiles(bm + 1, bn + 1) == 4  # partial tiles count
    # 132 SMs (H100): Llama-3-8B's k/v projections (N = 1024) never fill it below M = 2048,
    # its q/o (N = 4096) from M = 1024; Llama-2-70B's q/o (N = 8192) from M = 512
    assert not wgmma_int4.pays_off(1024, 1024, 132)
    assert not wgmma_int4.pays_off(512, 4096, 132)
    assert wgmma_int4.pays_off(1024, 4096, 132)
    assert wgmma_int4.pays_off(512, 8192, 132)
    # from FUSED_MAX_M on, dequantize + cuBLAS is as fast or faster, however many tiles
    assert not wgmma_int4.pays_off(wgmma_int4.FUSED_MAX_M, 128256, 132)


@pytest.mark.skipif(HOPPER, reason="the CPU / non-Hopper side of the rule")
def test_not_supported_off_hopper() -> None:
    x = torch.zeros(512, 128, dtype=torch.float16, device=DEVICE)
    codes = torch.zeros(64, 64, dtype=torch.uint8, device=DEVICE)
    scales = torch.ones(64, 1, dtype=torch.float16, device=DEVICE)
    assert not wgmma_int4.supported(x, codes, scales, 4, 128, 128)


def _check(fmt: str, m: int, n: int, k: int, bias: bool) -> None:
    qfmt = QuantFormat.parse(fmt)
    qw = quantize(torch.randn(n, k, generator=_gen) * 0.05, qfmt).to(DEVICE)
    x = torch.randn(m, k, generator=_gen).half().to(DEVICE)
    b = torch.randn(n, generator=_gen).half().to(DEVICE) if bias else None
    group = qfmt.effective_group(k)
    assert wgmma_int4.supported(x, qw.codes, qw.scales, 4, group, k)
    y = torch.full((m, n), float("nan"), dtype=torch.float16, device=DEVICE)
    wgmma_int4.wgmma_int4_matmul(x, qw.codes, qw.scales, qw.zeros, group, b, y)
    rel = kernel_env.relative_error(y, x, qw, b)
    assert rel < 2e-3, f"{fmt} M={m} N={n} K={k}: relative error {rel:.2e}"


@pytest.mark.gpu
@pytest.mark.skipif(not HOPPER, reason="needs an sm_90 GPU (wgmma)")
@pytest.mark.parametrize("fmt", ["int4-g64-sym", "int4-g64-asym", "int4-g128-sym", "int4-g128-asym",
                                 "int4-pc-sym", "int4-pc-asym"])
@pytest.mark.parametrize("m,n,k,bias", [(2048, 4096, 4096, False), (300, 1000, 1088, True), (17, 136, 192, False),
                                        (1100, 4000, 1088, True)])
def test_matches_reference(fmt: str, m: int, n: int, k: int, bias: bool) -> None:
    # partial tiles in M and N, an odd number of K steps (1088 = 17 x 64), M below one tile; the
    # first and last run more tiles than an H100 has SMs, so programs go on to a second tile (the
    # last with an odd number of K steps, so the stage ring's phases carry across tiles)
    _check(fmt, m, n, k, bias)


@pytest.mark.gpu
@pytest.mark.skipif(not HOPPER, reason="needs an sm_90 GPU (wgmma)")
def test_wo_matmul_routes_large_m_here() -> None:
    state = LaunchState()
    fmt = QuantFormat.parse("int4-g128-asym")
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    n = 128 * sms  # one 256-row x tile of every N tile fills the GPU at M = 256 * 2
    qw = quantize(torch.randn(n, 512, generator=_gen) * 0.05, fmt).to(DEVICE)
    x = torch.randn(512, 512, generator=_gen).half().to(DEVICE)
    y = wo_matmul(x, qw, state=state)
    assert state.tuned_config(512) == "wgmma_int4"
    ref = x.double().cpu() @ dequantize(qw.to("cpu"), torch.float64).t()
    assert ((y.double().cpu() - ref).norm() / ref.norm()).item() < 2e-3
    wo_matmul(x.bfloat16(), qw, state=state)  # bf16 is not taken: dequantize + cuBLAS
    assert state.tuned_config(512) == "dequant+cublas"
