"""ct_format: the signed shift, encode/decode inverses, and row-chunked encoding equal to whole."""

from __future__ import annotations

import pytest
import torch

from autoquant.export import ct_format
from autoquant.formats import QuantFormat
from autoquant.quant import quantize

FORMATS = ["int4-g32-asym", "int4-g128-sym", "int4-pc-asym", "int4-pc-sym", "int8-pc-sym", "int8-g64-asym"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_encode_decode_round_trip_and_chunks(fmt):
    fmt = QuantFormat.parse(fmt)
    w = torch.randn(300, 200, generator=torch.Generator().manual_seed(1))  # 200: a ragged last group
    qw = quantize(w, fmt)
    tensors = ct_format.encode(qw)
    assert tensors["weight_packed"].dtype == torch.int32 and tensors["weight_shape"].tolist() == [300, 200]
    back = ct_format.decode(fmt, tensors)
    assert torch.equal(back.codes, qw.codes) and torch.equal(back.scales, qw.scales)
    assert (back.zeros is None) == (qw.zeros is None) and (qw.zeros is None or torch.equal(back.zeros, qw.zeros))
    chunked = ct_format.encode_rows(lambda a, b: w[a:b], 300, fmt, chunk_rows=64)
    assert chunked.keys() == tensors.keys() and all(torch.equal(chunked[k], tensors[k]) for k in tensors)


def test_args_and_formats_map_both_ways():
    for text in FORMATS:
        fmt = QuantFormat.parse(text)
        assert ct_format.format_of_args(ct_format.quantization_args(fmt)) == fmt
