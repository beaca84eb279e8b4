"""Search spaces: bundled files load, tie groups and per-layer formats, clear errors."""

from __future__ import annotations

import pytest

from autoquant.errors import UserError
from autoquant.formats import FP16, QuantFormat
from autoquant.layers import LinearLayer
from autoquant.space import bundled_spaces, load_space, parse_space, restrict_quantizers


def _block(b: int) -> list[LinearLayer]:
    return [
        LinearLayer(f"model.layers.{b}.self_attn.{n}_proj", 64, 64, n, b) for n in ("q", "k", "v", "o")
    ] + [LinearLayer(f"model.layers.{b}.mlp.{n}_proj", 128 if n != "down" else 64, 64 if n != "down" else 128, n, b)
         for n in ("gate", "up", "down")]


LAYERS = _block(0) + _block(1) + [LinearLayer("lm_head", 256, 64, "lm_head", None, tied=True)]


def _base(**over) -> dict:
    d = {"name": "t", "formats": {"default": ["fp16", "int8-pc-sym", "int4-g128-asym"]}, "tie": [["q", "k", "v"], ["gate", "up"]]}
    d.update(over)
    return d


def test_bundled_spaces_load_and_differ() -> None:
    assert {"default", "aggressive"} <= set(bundled_spaces())
    default, aggressive = load_space(None), load_space("aggressive")
    assert default.name == "default" and aggressive.name == "aggressive"
    assert set(default.all_formats()) < set(aggressive.all_formats())
    assert FP16 in default.all_formats()


def test_tie_groups_follow_blocks_and_roles() -> None:
    groups = parse_space(_base()).tie_groups(LAYERS)
    names = [sorted(g) for g in groups]
    assert sorted(["model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.k_proj", "model.layers.0.self_attn.v_proj"]) in names
    assert ["model.layers.1.mlp.down_proj"] in names
    assert sum(len(g) for g in groups) == len(LAYERS)  # a partition
    assert len(groups) == 2 * 4 + 1  # qkv, o, gate/up, down per block, plus lm_head


def test_tied_lm_head_kept_unless_space_opts_in() -> None:
    lm = LAYERS[-1]
    keep = parse_space(_base(lm_head={"formats": ["fp16", "int8-pc-sym"]}))
    assert keep.formats_for(lm) == [FP16]
    search = parse_space(_base(lm_head={"formats": ["fp16", "int8-pc-sym"], "tied": "search"}))
    assert search.formats_for(lm) == [FP16, QuantFormat.parse("int8-pc-sym")]


def test_tied_roles_get_the_intersection() -> None:
    space = parse_space(_base(formats={"default": ["fp16", "int8-pc-sym", "int4-g128-asym"], "k": ["fp16", "int8-pc-sym"]}))
    q = LAYERS[0]
    assert space.formats_for(q) == [FP16, QuantFormat.parse("int8-pc-sym")]
    assert QuantFormat.parse("int4-g128-asym") in space.formats_for(LAYERS[3])  # o is not tied


@pytest.mark.parametrize(
    ("doc", "needle"),
    [
        (_base(formats={"default": ["int3-g128"]}), "formats.default"),
        (_base(formats={"attention": ["fp16"]}), "formats.attention: unknown key"),
        (_base(formats={"q": ["fp16"]}), "`default` entry"),
        (_base(tie=[["q", "query"]]), "unknown role 'query'"),
        (_base(tie=[["q", "k"], ["k", "v"]]), "two tie groups"),
        (_base(formats={"default": ["fp16"], "q": ["int8-pc-sym"]}, tie=[["q", "k"]]), "share no allowed format"),
        (_base(lm_head={"tied": "maybe"}), "lm_head.tied"),
        (_base(embeddings="int8"), "embeddings"),
        (_base(extra=1), "extra: unknown key"),
        (_base(quantizers={"default": ["rtn", "hqq"]}), "quantizers.default: unknown quantizer 'hqq'"),
        (_base(quantizers={"q": ["gptq"]}), "`default` entry"),
        (_base(quantizers={"default": ["rtn"], "mlp": ["gptq"]}), "quantizers.mlp: unknown key"),
        ([1, 2], "expected a mapping"),
    ],
)
def test_malformed_space_names_the_key(doc, needle: str) -> None:
    with pytest.raises(UserError, match="search space bad.yaml") as err:
        parse_space(doc, "bad.yaml")
    assert needle in str(err.value)


def test_bad_files(tmp_path) -> None:
    with pytest.raises(UserError, match="not found"):
        load_space(str(tmp_path / "none.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("formats: [unclosed\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_space(str(bad))


def test_quantizers_per_role_and_format() -> None:
    """gptq and awq choose integer codes only; awq only where its scale folds (not o, not lm_head);
    a space without `quantizers` is rtn only, as spaces were before quantizers existed."""
    int4, int8 = QuantFormat.parse("int4-g128-asym"), QuantFormat.parse("int8-pc-sym")
    space = parse_space(_base(quantizers={"default": ["awq", "rtn", "gptq"], "down": ["rtn"], "lm_head": ["rtn", "gptq"]}))
    q, o, down, lm = LAYERS[0], LAYERS[3], LAYERS[6], LAYERS[-1]
    assert space.quantizers_for(q, int4) == ("rtn", "gptq", "awq")  # in QUANTIZERS' order
    assert space.quantizers_for(o, int4) == ("rtn", "gptq")
    assert space.quantizers_for(down, int8) == ("rtn",)
    assert space.quantizers_for(lm, int8) == ("rtn", "gptq")
    assert space.quantizers_for(q, FP16) == ("rtn",) and space.quantizers_for(q, QuantFormat.parse("q4_0")) == ("rtn",)
    assert parse_space(_base()).quantizers_for(q, int4) == ("rtn",)
    assert "quantizers" not in parse_space(_base()).to_dict()  # old spaces keep their study signature
    assert load_space(None).all_quantizers() == ("rtn", "gptq")
    assert load_space("aggressive").all_quantizers() == ("rtn", "gptq", "awq")


def test_restrict_quantizers_renames_and_refuses_what_is_not_allowed() -> None:
    space = load_space(None)
    rtn = restrict_quantizers(space, ["rtn"])
    assert rtn.name == "default+rtn" and rtn.all_quantizers() == ("rtn",)
    assert restrict_quantizers(space, None) is space and restrict_quantizers(space, ["gptq", "rtn"]) is space
    with pytest.raises(UserError, match="unknown quantizer 'hqq'"):
        restrict_quantizers(space, ["hqq"])
    with pytest.raises(UserError, match="allows default only rtn"):
        restrict_quantizers(parse_space(_base()), ["gptq"])
