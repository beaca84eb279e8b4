import math

import pytest

from autoquant.formats import FP16, QuantFormat, all_formats


@pytest.mark.parametrize("fmt", all_formats(), ids=str)
def test_string_round_trip(fmt):
    assert QuantFormat.parse(str(fmt)) == fmt


@pytest.mark.parametrize("text", ["int5", "int4-g100", "int4-g128", "fp8", "int8-pc", "int4-g0-sym", ""])
def test_parse_refuses_with_the_accepted_forms(text):
    with pytest.raises(ValueError, match="expected"):
        QuantFormat.parse(text)


def test_parse_is_case_and_space_tolerant():
    assert QuantFormat.parse(" INT4-G128-ASYM ") == QuantFormat("int4", 128, False)


@pytest.mark.parametrize(
    "text,n,k,expected",
    [
        ("fp16", 4096, 4096, 4096 * 4096 * 2),
        ("bf16", 10, 3, 60),
        # int8 per channel: codes + one fp16 scale a row
        ("int8-pc-sym", 4096, 4096, 4096 * 4096 + 4096 * 2),
        ("int8-pc-asym", 4096, 4096, 4096 * 4096 + 4096 * 3),
        # int4 g128: half a byte a weight + (fp16 scale [+ uint8 zero]) per 128 inputs
        ("int4-g128-sym", 4096, 4096, 4096 * 2048 + 4096 * 32 * 2),
        ("int4-g128-asym", 4096, 4096, 4096 * 2048 + 4096 * 32 * 3),
        # odd K: the last byte and the last group are partial
        ("int4-g32-asym", 7, 33, 7 * 17 + 7 * 2 * 3),
        ("int4-pc-sym", 5, 1, 5 * 1 + 5 * 2),
    ],
)
def test_storage_bytes(text, n, k, expected):
    assert QuantFormat.parse(text).storage_bytes(n, k) == expected


def test_bits_per_weight_of_int4_g128_is_4_and_a_bit():
    fmt = QuantFormat.parse("int4-g128-sym")
    assert math.isclose(fmt.bits_per_weight(4096, 4096), 4 + 16 / 128)
    assert FP16.bits_per_weight(3, 3) == 16


def test_float_formats_take_no_group():
    with pytest.raises(ValueError):
        QuantFormat("fp16", 128)


def test_all_formats_are_distinct():
    fmts = all_formats()
    assert len(set(fmts)) == len(fmts) == 2 + 2 * 4 * 2
