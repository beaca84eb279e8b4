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


def test_eager_rest_is_the_graphs_fit_plus_a_decode_floor() -> None:
    from autoquant.hardware.measure import eager_rest

    graphs = RestCalibration(50e-6, 0.6, 5.0, 0.4, measured=True)
    g = [ForwardPoint("decode", 1, 512, 4e-3, 1e-3), ForwardPoint("decode", 1, 4096, 6e-3, 1e-3),
         ForwardPoint("prefill", 1, 256, 9e-3, 2e-3)]
    e = [ForwardPoint("decode", 1, 512, 14e-3, 1e-3), ForwardPoint("decode", 1, 4096, 14e-3, 1e-3),
         ForwardPoint("prefill", 1, 256, 9e-3, 2e-3)]  # launch-bound decode: flat in context
    got = eager_rest(graphs, g, e, blocks=10)
    assert got.decode_floor_s == pytest.approx(((14 - 4) + (14 - 6)) / 2 * 1e-3 / 10)
    assert (got.block_s, got.kv_efficiency, got.token_passes, got.attn_efficiency) == (50e-6, 0.6, 5.0, 0.4)
