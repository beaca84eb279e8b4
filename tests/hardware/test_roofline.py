from __future__ import annotations

from autoquant.formats import QuantFormat
from autoquant.hardware.roofline import BW_EFFICIENCY, LAUNCH_S, RooflineModel, layer_bytes
from autoquant.hardware.specs import get_spec

FP16, INT4 = QuantFormat("fp16"), QuantFormat.parse("int4-g128-asym")


def test_decode_is_bandwidth_bound() -> None:
    m = RooflineModel(get_spec("h100"))
    t = m.layer_seconds(4096, 4096, FP16, 1)
    assert t == layer_bytes(4096, 4096, FP16, 1) / (m.bandwidth * BW_EFFICIENCY[16]) + LAUNCH_S
    assert m.layer_seconds(4096, 4096, INT4, 1) - LAUNCH_S < 0.6 * (t - LAUNCH_S)


def test_prefill_is_compute_bound() -> None:
    m = RooflineModel(get_spec("h100"))
    t16, t4 = m.layer_seconds(4096, 4096, FP16, 8192), m.layer_seconds(4096, 4096, INT4, 8192)
    assert t16 > 2 * 8192 * 4096 * 4096 / m.fp16_flops
    assert t4 > t16  # the dequantizing GEMM reaches less of the tensor peak than cuBLAS


def test_roofline_is_labelled_estimated() -> None:
    m = RooflineModel(get_spec("l4"))
    assert m.measured is False and "estimated" in m.name
    assert not m.layer_time(1024, 1024, INT4, 1).measured
