import math

import pytest

from autoquant.costs import format_bytes, parse_latency, parse_quality, parse_size
from autoquant.errors import UserError


@pytest.mark.parametrize(
    "text,expected",
    [("24GB", 24 * 10**9), ("24GiB", 24 * 2**30), ("24000MB", 24 * 10**9), ("0.5TB", 5 * 10**11),
     ("24 gb", 24 * 10**9), ("512MiB", 512 * 2**20), ("1e9", 10**9), ("80G", 80 * 10**9)],
)
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["24XB", "GB", "-1GB", "0GB", "24 G B", "", "twentyGB"])
def test_parse_size_refuses_with_accepted_units(text):
    with pytest.raises(UserError, match="24GB"):
        parse_size(text)


@pytest.mark.parametrize("text,expected", [("30ms", 0.03), ("0.5s", 0.5), ("800us", 8e-4), ("2", 2.0)])
def test_parse_latency(text, expected):
    assert math.isclose(parse_latency(text), expected)


@pytest.mark.parametrize("text", ["30 parsecs", "ms", "-3ms", "0ms"])
def test_parse_latency_refuses(text):
    with pytest.raises(UserError):
        parse_latency(text)


def test_parse_quality():
    assert parse_quality("kl=0.05").metric == "kl" and parse_quality("kl=0.05").limit == 0.05
    q = parse_quality("ppl=+3%")
    assert q.metric == "ppl" and math.isclose(q.limit, 0.03) and str(q) == "ppl=+3%"
    for bad in ["kl=5%", "ppl=3", "loss=1", "kl="]:
        with pytest.raises(UserError):
            parse_quality(bad)


def test_format_bytes():
    assert format_bytes(13.48e9) == "13.48 GB"
    assert format_bytes(999) == "999 B"
