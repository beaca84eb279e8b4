"""The real model: the proxy must rank measured KL well (the issue's goal: Spearman >= 0.8).

Restricted to the 30 down projections x {int8, int4-g128} so it runs in about a minute;
the full default profile's numbers are in bench/README.md.
"""

from __future__ import annotations

import pytest

from autoquant.data import calibration_text
from autoquant.formats import FP16, QuantFormat
from autoquant.models import resolve_model
from autoquant.sensitivity import profile_sensitivity
from autoquant.space import SearchSpace

pytestmark = [pytest.mark.slow, pytest.mark.ray]

INT8, INT4 = QuantFormat.parse("int8-pc-sym"), QuantFormat.parse("int4-g128-asym")


def test_proxy_ranks_measured_kl_on_smollm2(tmp_path):
    space = SearchSpace("down-only", {"default": (FP16,), "down": (FP16, INT8, INT4)})
    table = profile_sensitivity(resolve_model(None), space, calibration_text(), calib_tokens=512, measure="sample",
                                measure_tokens=256, sample_size=14, workers=2, progress=False, cache_dir=tmp_path)
    assert len(table.layers) == 30 and len(table.entries) == 60
    measured = table.measured_entries()
    assert len(measured) == 14 and {e.format for e in measured} == {str(INT8), str(INT4)}
    assert table.spearman >= 0.8, table.spearman
    # The Fisher proxy is a KL estimate in nats/token: the fitted scale stays near 1.
    assert 0.3 < table.proxy_to_kl < 3.0, table.proxy_to_kl
    for layer in table.layers:
        assert table.entries[(layer, str(INT4), "rtn")].proxy > table.entries[(layer, str(INT8), "rtn")].proxy
    # The last block's down projection is among the most sensitive in int4, the layers.3 one is not.
    ranking = [name for name, _ in table.layer_ranking()]
    assert ranking.index("model.layers.29.mlp.down_proj") < 5
    assert table.reference_perplexity is not None and table.reference_perplexity > 1
