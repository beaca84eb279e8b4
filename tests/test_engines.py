"""Engines: which formats each loads, and the search space narrowed to them."""

from __future__ import annotations

import pytest

from autoquant.engines import ENGINES, get_engine, restrict_space
from autoquant.errors import UserError
from autoquant.formats import QuantFormat, all_formats
from autoquant.layers import LinearLayer
from autoquant.space import load_space, parse_space

F = QuantFormat.parse


def test_what_each_engine_loads():
    vllm, hf, aq = (get_engine(n) for n in ("vllm", "transformers", "autoquant"))
    assert all(aq.loads(f)[0] for f in all_formats())
    assert [str(f) for f in all_formats() if not vllm.loads(f)[0]] == [
        "int8-pc-asym", "int8-g32-asym", "int8-g64-asym", "int8-g128-asym"]
    assert all(hf.loads(f)[0] == f.symmetric for f in all_formats())
    assert "zero points" in hf.loads(F("int4-g128-asym"))[1]
    layer = LinearLayer("model.layers.0.mlp.up_proj", 1536, 576, "up", 0)
    assert not vllm.loads_layer(F("int4-g128-asym"), layer)[0]  # 576 = 4.5 groups of 128
    assert vllm.loads_layer(F("int4-g64-asym"), layer)[0] and not hf.loads_layer(F("int4-g128-sym"), layer)[0]
    with pytest.raises(UserError, match="unknown engine 'tgi'; expected one of vllm, transformers, autoquant"):
        get_engine("tgi")
    assert set(ENGINES) == {"vllm", "transformers", "autoquant", "llamacpp"}
    cpp = get_engine("llamacpp")
    assert cpp.loads(F("q4_0"))[0] and cpp.loads(F("fp16"))[0] and not cpp.loads(F("int4-g128-sym"))[0]
    assert not any(e.loads(F("q4_0"))[0] for e in (vllm, hf))


def test_restricted_spaces_keep_to_the_engine_and_are_named_for_it():
    space = load_space("aggressive")
    hf = restrict_space(space, get_engine("transformers"))
    assert hf.name == "aggressive+transformers"
    assert [str(f) for f in hf.role_formats["default"]] == ["fp16", "int8-pc-sym", "int4-g128-sym", "int4-pc-sym"]
    assert [str(f) for f in hf.lm_head_formats] == ["fp16", "int8-pc-sym"]
    assert hf.to_dict()["engine"] == "transformers"
    assert restrict_space(space, get_engine("autoquant")) is space
    vllm = restrict_space(load_space(None), get_engine("vllm"))
    assert vllm.name == "default" and vllm.to_dict()["engine"] == "vllm"  # the default engine keeps the name
    q = LinearLayer("model.layers.0.self_attn.q_proj", 576, 576, "q", 0)
    assert [str(f) for f in vllm.formats_for(q)] == ["fp16", "int8-pc-sym", "int4-g64-asym"]


def test_every_bundled_space_gives_each_engine_a_choice_per_layer():
    layer = LinearLayer("model.layers.0.mlp.down_proj", 576, 1536, "down", 0)
    for name in ("default", "aggressive"):
        for engine in ENGINES.values():
            formats = restrict_space(load_space(name), engine).formats_for(layer)
            assert formats and all(engine.loads_layer(f, layer)[0] for f in formats)


def test_a_role_left_without_formats_is_refused_naming_role_and_engine():
    space = parse_space({"name": "asym", "formats": {"default": ["int4-g128-asym"], "down": ["int4-g64-asym"]}})
    with pytest.raises(UserError, match="role 'default' has no format that engine 'transformers' loads"):
        restrict_space(space, get_engine("transformers"))
