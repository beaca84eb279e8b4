from __future__ import annotations

import pytest
from hardware_fixtures import shape  # noqa: F401  (a fixture)

from autoquant.hardware.base import RestCalibration
from autoquant.hardware.latency import rest_decode_seconds, rest_prefill_seconds
from autoquant.hardware.measure import ForwardPoint, fit_rest


class _Model:
    bandwidth, fp16_flops = 3.0e12, 7.0e14
    rest = RestCalibration(50e-6, 0.6, 5.0, 0.4, measured=True)


def test_fit_recovers_a_known_allowance(shape) -> None:
    m = _Model()
    points = [ForwardPoint("decode", 1, c, rest_decode_seconds(shape, m, 1, c) + 1e-3, 1e-3) for c in (512, 4096)]
    points += [ForwardPoint("prefill", 1, c, rest_prefill_seconds(shape, m, 1, c) + 2e-3, 2e-3) for c in (256, 2048)]
    fit = fit_rest(shape, points, m.bandwidth, m.fp16_flops)
    assert fit.measured
    for got, want in zip(fit.to_dict().values(), m.rest.to_dict().values()):
        assert got == pytest.approx(want, rel=1e-6)
