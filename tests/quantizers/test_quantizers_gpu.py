"""gptq and awq where users profile and calibrate: on the GPU (the profile's workers and the quality
meter take it when there is one). Same results as on the CPU, up to float32 summation order."""

from __future__ import annotations

import pytest
import torch

from autoquant.formats import QuantFormat
from autoquant.quant import dequantize, unpacked_codes
from autoquant.quantizers.awq import awq_scales, output_error
from autoquant.quantizers.gptq import gptq

pytestmark = pytest.mark.gpu


def _layer(n=256, k=512, tokens=4096, seed=0):
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(k, k, generator=g) / k**0.5 + torch.eye(k)
    x = (torch.randn(tokens, k, generator=g) @ mix) * torch.rand(k, generator=g).mul(4).add(0.1)
    return torch.randn(n, k, generator=g) * 0.02, x.t() @ x


@pytest.mark.parametrize("fmt", ["int4-g128-asym", "int4-g32-sym", "int8-pc-sym", "int4-pc-asym"])
@pytest.mark.parametrize("act_order", [False, True])
def test_gptq_on_the_gpu_matches_the_cpu(fmt, act_order):
    w, h = _layer()
    f = QuantFormat.parse(fmt)
    cpu = gptq(w, f, h, act_order=act_order)
    gpu = gptq(w.cuda(), f, h.cuda(), act_order=act_order)
    assert gpu.codes.device.type == "cuda"
    same = (unpacked_codes(gpu).cpu() == unpacked_codes(cpu)).float().mean().item()
    assert same > 0.99, same  # rounding ties may flip a few codes under another summation order
    e_cpu = output_error(w, dequantize(cpu), h)
    e_gpu = output_error(w, dequantize(gpu).cpu(), h)
    assert abs(e_gpu - e_cpu) <= 0.02 * e_cpu, (e_gpu, e_cpu)


def test_awq_scales_on_the_gpu_match_the_cpu():
    w, h = _layer()
    fmt = QuantFormat.parse("int4-g128-asym")
    cpu = awq_scales([w], [fmt], h)
    gpu = awq_scales([w.cuda()], [fmt], h.cuda())
    assert gpu.device.type == "cuda" and torch.allclose(gpu.cpu(), cpu, rtol=1e-4)


@pytest.mark.parametrize("quantizer", ["gptq", "awq"])
def test_a_calibrated_model_on_the_gpu_runs_on_the_kernels(quantizer):
    """Whole-model calibration on the GPU, then the packed (Triton kernel) model computes what the
    calibrated fake-quantized one does."""
    from autoquant.apply import apply_plan
    from autoquant.layers import discover_layers
    from autoquant.plan import Plan
    from tiny_models import tiny_model

    windows = torch.randint(0, 256, (8, 64), generator=torch.Generator().manual_seed(0))
    ids = torch.randint(0, 256, (2, 16), generator=torch.Generator().manual_seed(1)).cuda()
    fake, packed = tiny_model("llama").cuda(), tiny_model("llama").cuda()
    plan = Plan.uniform("int4-g32-sym", discover_layers(fake), quantizer=quantizer)
    apply_plan(fake, plan, "fake", calibration=windows)
    apply_plan(packed, plan, "packed", calibration=windows)
    with torch.no_grad():
        assert torch.allclose(fake(ids).logits.float(), packed(ids).logits.float(), atol=3e-2)


def test_a_profile_worker_on_the_gpu_measures_gptq(tmp_path):
    from autoquant.data import calibration_text, token_windows
    from autoquant.models import load_tokenizer
    from autoquant.sensitivity.worker import ProfileWorker, WorkerSpec
    from tiny_models import save_tiny_model

    source = save_tiny_model(tmp_path / "tiny-llama")
    windows = token_windows(load_tokenizer(source), calibration_text(), 128, 1024).clone()
    cpu = ProfileWorker(WorkerSpec(source, windows, windows[:2]))
    gpu = ProfileWorker(WorkerSpec(source, windows, windows[:2], device="cuda"))
    name = "model.layers.1.mlp.down_proj"
    kl = {}
    for where, worker in (("cpu", cpu), ("gpu", gpu)):
        stats = worker.statistics(0, len(windows), [name])
        parts, seconds = worker.proxies(stats.subset([name]), name, [("int4-g64-asym", "rtn"), ("int4-g64-asym", "gptq")])
        assert parts[("int4-g64-asym", "gptq")].output_error < parts[("int4-g64-asym", "rtn")].output_error
        kl[where] = worker.measure(name, "int4-g64-asym", "gptq", stats).kl
    assert abs(kl["gpu"] - kl["cpu"]) <= 0.05 * kl["cpu"], kl
