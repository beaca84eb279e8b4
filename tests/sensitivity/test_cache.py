"""The on-disk cache: results appended as they finish, read back, torn lines skipped."""

from __future__ import annotations

from autoquant.sensitivity.cache import CacheKey, ProfileCache
from autoquant.quality import Measurement
from autoquant.sensitivity.proxy import ProxyParts

KEY = CacheKey("modelfp", "calibfp", 2048, 512, "1")
M = Measurement(perplexity=20.2, kl=0.002, ppl_change=0.01, tokens=511, reference_perplexity=20.0, seconds=0.5)


def test_results_survive_a_new_process(tmp_path):
    c = ProfileCache(KEY, tmp_path)
    c.add_proxies("l0", {("int8-pc-sym", "rtn"): ProxyParts(1.0, 10.0, 0.01), ("int4-g128-asym", "rtn"): ProxyParts(5.0, 10.0, None),
                         ("int4-g128-asym", "gptq"): ProxyParts(2.0, 10.0, None)}, {"rtn": 0.5, "gptq": 2.0})
    c.add_proxies("l1", {("int4-g128-asym", "gptq"): ProxyParts(2.0, 10.0, None)}, {"gptq": 1.0})
    c.add_measurement(("l0", "int8-pc-sym", "rtn"), 512, M)
    c.add_measurement(("l0", "int4-g128-asym", "gptq"), 512, M)
    again = ProfileCache(KEY, tmp_path)
    assert again.proxies() == c.proxies()
    assert again.proxies()[("l0", "int4-g128-asym", "rtn")].fisher_error is None
    assert again.proxies()[("l0", "int4-g128-asym", "gptq")].output_error == 2.0
    assert again.measurements(512) == {("l0", "int8-pc-sym", "rtn"): M, ("l0", "int4-g128-asym", "gptq"): M}
    assert again.measurements(1024) == {}  # another token count is another measurement
    assert again.proxy_seconds() == {"rtn": 0.5, "gptq": 3.0}  # what each quantizer cost, summed


def _cache_then_line(tmp_path, line: str) -> None:
    """A cache holding one proxy of l0, then `line` written as is (an older autoquant's, or torn)."""
    c = ProfileCache(KEY, tmp_path)
    c.add_proxies("l0", {("int8-pc-sym", "rtn"): ProxyParts(1.0, 1.0, 1.0)}, {})
    with open(c.path, "a") as fh:
        fh.write(line)


def test_lines_written_before_quantizers_read_as_round_to_nearest(tmp_path):
    _cache_then_line(tmp_path, '{"kind": "proxy", "layer": "l1", "format": "int8-pc-sym", "output_error": 2.0, '
                               '"output_energy": 1.0, "fisher_error": 0.5}\n')
    assert ("l1", "int8-pc-sym", "rtn") in ProfileCache(KEY, tmp_path).proxies()


def test_any_key_field_changes_the_file(tmp_path):
    ProfileCache(KEY, tmp_path).add_proxies("l0", {("int8-pc-sym", "rtn"): ProxyParts(1.0, 1.0, 1.0)}, {})
    for other in (CacheKey("x", "calibfp", 2048, 512, "1"), CacheKey("modelfp", "y", 2048, 512, "1"),
                  CacheKey("modelfp", "calibfp", 1024, 512, "1"), CacheKey("modelfp", "calibfp", 2048, 256, "1"),
                  CacheKey("modelfp", "calibfp", 2048, 512, "2")):
        assert ProfileCache(other, tmp_path).proxies() == {}


def test_torn_last_line_is_skipped(tmp_path):
    _cache_then_line(tmp_path, '{"kind": "proxy", "layer": "l1", "format": "int8-pc-sym", "output_er')  # killed mid-write
    again = ProfileCache(KEY, tmp_path)
    assert set(again.proxies()) == {("l0", "int8-pc-sym", "rtn")}
    again.add_proxies("l2", {("int8-pc-sym", "rtn"): ProxyParts(2.0, 1.0, 1.0)}, {})  # appending after a torn line still works
    assert ("l2", "int8-pc-sym", "rtn") in ProfileCache(KEY, tmp_path).proxies()


def test_measurements_written_before_the_one_meter_still_read(tmp_path):
    """Records of the profile's own Measurement (kl, ppl_change, tokens, reference_perplexity)."""
    _cache_then_line(tmp_path, '{"kind": "kl", "layer": "l0", "format": "int8-pc-sym", "measure_tokens": 512, '
                               '"kl": 0.002, "ppl_change": 0.01, "tokens": 511, "reference_perplexity": 20.0}\n')
    (m,) = ProfileCache(KEY, tmp_path).measurements(512).values()
    assert (m.kl, m.tokens, m.reference_perplexity) == (0.002, 511, 20.0) and abs(m.perplexity - 20.2) < 1e-9
