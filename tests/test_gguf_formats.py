"""llama.cpp block formats: names, sizes from the gguf package, its arithmetic, and who refuses them."""

import numpy as np
import pytest
import torch
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, quants

from autoquant import gguf_formats
from autoquant.engines import get_engine
from autoquant.errors import UserError
from autoquant.formats import QuantFormat
from autoquant.hardware.roofline import RooflineModel
from autoquant.hardware.specs import get_spec
from autoquant.layers import LinearLayer
from autoquant.quant import fake_quantize
from autoquant.space import load_space

USABLE = gguf_formats.usable_types()


def test_the_legacy_block_formats_are_usable():
    assert {"q8_0", "q5_1", "q5_0", "q4_1", "q4_0"} <= set(USABLE)


@pytest.mark.parametrize("name", USABLE)
def test_parse_round_trip_and_bytes_from_the_gguf_package(name):
    fmt = QuantFormat.parse(name.upper())
    assert str(fmt) == name and fmt.is_gguf and not fmt.is_float
    block, type_size = GGML_QUANT_SIZES[GGMLQuantizationType[name.upper()]]
    assert fmt.storage_bytes(576, 1536) == 576 * (1536 // block) * type_size
    assert fmt.bits == int(name[1])


def test_q4_0_is_four_and_a_half_bits():
    assert QuantFormat.parse("q4_0").bits_per_weight(64, 256) == 4.5
    assert QuantFormat.parse("q8_0").bits_per_weight(64, 256) == 8.5


def test_a_type_gguf_cannot_quantize_is_refused_with_the_usable_ones():
    missing = [n for n in ("q6_k", "q5_k", "q4_k", "q3_k", "q2_k") if n not in USABLE]
    if not missing:
        pytest.skip("the installed gguf quantizes every k-quant")
    with pytest.raises(ValueError, match="can read but not write") as e:
        QuantFormat.parse(missing[0])
    assert "q4_0" in str(e.value)


@pytest.mark.parametrize("name", USABLE)
def test_fake_quantize_is_the_gguf_packages_round_trip(name):
    w = torch.randn(8, 64)
    qtype = GGMLQuantizationType[name.upper()]
    expected = quants.dequantize(quants.quantize(w.numpy(), qtype), qtype)
    got = fake_quantize(w, QuantFormat.parse(name))
    assert np.array_equal(got.numpy(), expected)  # bit for bit
    assert 0 < (got - w).abs().max() < w.abs().max() / 4


def test_rows_must_be_whole_blocks():
    fmt = QuantFormat.parse("q4_0")
    assert fmt.fits(64) and not fmt.fits(40)
    space = load_space("llamacpp")
    odd = LinearLayer("model.layers.0.mlp.down_proj", 64, 40, "down", 0)
    even = LinearLayer("model.layers.0.mlp.down_proj", 64, 64, "down", 0)
    assert space.formats_for(odd) == [QuantFormat.parse("fp16")]
    assert fmt in space.formats_for(even)
    with pytest.raises(ValueError, match="whole 32-weight blocks"):
        fake_quantize(torch.randn(4, 40), fmt)


def test_the_llamacpp_space_and_engine():
    space = load_space("llamacpp")
    engine = get_engine("llamacpp")
    assert space.tie_roles == ()
    assert all(engine.loads(f)[0] for f in space.all_formats())
    ok, why = engine.loads(QuantFormat.parse("int4-g128-asym"))
    assert not ok and "no GGUF form" in why
    for other in ("vllm", "transformers", "autoquant"):
        assert not get_engine(other).loads(QuantFormat.parse("q4_0"))[0]


def test_packed_mode_refuses_block_formats_before_touching_the_model():
    from tiny_models import tiny_model

    from autoquant.apply import apply_plan

    model = tiny_model("llama")
    names = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    before = model.get_submodule(names[0]).weight.clone()
    plan = {names[0]: QuantFormat.parse("int8-pc-sym"), names[1]: QuantFormat.parse("q4_0")}
    with pytest.raises(UserError, match=f"{names[1]}: q4_0 is a llama.cpp block format"):
        apply_plan(model, plan, mode="packed")
    assert torch.equal(model.get_submodule(names[0]).weight, before)


def test_latency_of_block_formats_is_an_estimate():
    model = RooflineModel(get_spec("h100"))
    t5 = model.layer_time(4096, 4096, QuantFormat.parse("q5_0"), 1)
    t8 = model.layer_time(4096, 4096, QuantFormat.parse("q8_0"), 1)
    t4 = model.layer_time(4096, 4096, QuantFormat.parse("q4_0"), 1)
    assert not t5.measured and t4.seconds < t5.seconds < t8.seconds
