"""compressed-tensors export on tiny random models: the config read back with compressed-tensors'
own classes, its own unpacking equal to autoquant's dequantized weights bit for bit, round trips
through autoquant's loader and plain transformers, shards, refusals (exit 2 naming the layer)."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from autoquant.apply import apply_plan
from autoquant.cli import main
from autoquant.errors import UserError
from autoquant.export import export_plan, load_quantized
from autoquant.export.checks import fused_groups
from autoquant.export.streaming import SourceTensors
from autoquant.formats import QuantFormat
from autoquant.layers import discover_layers
from autoquant.plan import Plan
from autoquant.quant import dequantize, quantize

F = QuantFormat.parse


@pytest.fixture
def tiny(tiny_model_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    return tiny_model_dir, model, discover_layers(model)


def _plan(layers, src, by_role: dict[str, str], default: str = "fp16") -> Plan:
    return Plan({l.name: F(by_role.get(l.role, default)) for l in layers}, str(src))


def _qconfig(out):
    from compressed_tensors.quantization import QuantizationConfig

    cfg = json.loads((out / "config.json").read_text())["quantization_config"]
    assert cfg["quant_method"] == "compressed-tensors" and cfg["format"] == "pack-quantized"
    return QuantizationConfig.model_validate({k: v for k, v in cfg.items() if k in QuantizationConfig.model_fields})


def _logits(model, ids):
    with torch.no_grad():
        return model(ids).logits.float()


MIXED = {"q": "int4-g32-asym", "k": "int4-g32-asym", "v": "int4-g32-asym", "o": "int8-pc-sym",
         "gate": "int4-g64-asym", "up": "int4-g64-asym", "down": "int4-pc-asym", "lm_head": "fp16"}


def test_config_reads_back_every_layer_in_one_group_or_ignored_fused_shards_share(tiny, tmp_path):
    from compressed_tensors.utils import is_match

    src, model, layers = tiny
    plan = _plan(layers, src, MIXED)
    out = export_plan(plan, tmp_path / "ct", engine="vllm")
    qc = _qconfig(out)
    scheme_of = {}
    for layer in layers:
        module = model.get_submodule(layer.name)
        hits = [g for g, s in qc.config_groups.items() if any(is_match(layer.name, module, t) for t in s.targets)]
        ignored = any(is_match(layer.name, module, t) for t in qc.ignore)
        assert len(hits) + ignored == 1, (layer.name, hits, ignored)
        scheme_of[layer.name] = None if ignored else qc.config_groups[hits[0]].weights
        if not ignored:  # the scheme says exactly the plan's format
            w = scheme_of[layer.name]
            fmt = plan.format_of(layer)
            assert (w.num_bits, w.symmetric, w.group_size, w.strategy) == (
                fmt.bits, fmt.symmetric, fmt.group_size, "channel" if fmt.group_size is None else "group")
    groups = fused_groups(layers)
    assert len(groups) == 4  # q/k/v and gate/up in each of 2 blocks
    for group in groups:
        assert len({json.dumps(scheme_of[l.name].model_dump(), sort_keys=True) for l in group}) == 1


def test_asym_weights_rebuilt_by_compressed_tensors_equal_autoquant_bit_for_bit(tiny, tmp_path):
    from compressed_tensors.compressors import PackedQuantizationCompressor, unpack_from_int32

    src, model, layers = tiny
    plan = _plan(layers, src, MIXED)
    out = export_plan(plan, tmp_path / "ct", engine="vllm", max_shard_size="20KB")
    qc = _qconfig(out)
    files = SourceTensors(out)
    source = SourceTensors(src)
    checked = 0
    for layer in layers:
        fmt = plan.format_of(layer)
        if fmt.is_float:
            continue
        scheme = next(s for s in qc.config_groups.values() if layer.name in s.targets)
        parts = {k: files.get(f"{layer.name}.{k}") for k in
                 ("weight_packed", "weight_scale", "weight_shape", "weight_zero_point") if f"{layer.name}.{k}" in files}
        rebuilt = PackedQuantizationCompressor.decompress(parts, scheme)["weight"]
        qw = quantize(source.get(f"{layer.name}.weight").float(), fmt)
        ours = dequantize(qw, torch.float32)
        assert torch.equal(rebuilt.float(), ours.to(rebuilt.dtype).float()), layer.name
        # ... and the codes and zero points themselves: autoquant's unsigned ones, shifted to signed
        bits = fmt.bits
        codes = unpack_from_int32(parts["weight_packed"], bits, qw.shape).to(torch.int16) + (1 << (bits - 1))
        from autoquant.quant import unpacked_codes

        assert torch.equal(codes, unpacked_codes(qw).to(torch.int16))
        if qw.zeros is not None:
            zp = unpack_from_int32(parts["weight_zero_point"], bits, qw.zeros.shape, packed_dim=0)
            assert torch.equal(zp.to(torch.int16) + (1 << (bits - 1)), qw.zeros.to(torch.int16))
        checked += 1
    assert checked == len(layers) - 1


@pytest.mark.parametrize("name, by_role, default, engine", [
    ("fp16", {}, "fp16", "transformers"),
    ("int8", {}, "int8-pc-sym", "transformers"),
    ("int4", {}, "int4-g32-sym", "transformers"),
    ("mixed-sym", {"q": "int4-g32-sym", "k": "int4-g32-sym", "v": "int4-g32-sym", "o": "int8-pc-sym",
                   "down": "int4-pc-sym", "lm_head": "int8-pc-sym"}, "fp16", "transformers"),
    ("mixed-asym", MIXED, "fp16", "vllm"),
])
def test_round_trips(tiny, tmp_path, name, by_role, default, engine):
    src, model, layers = tiny
    plan = _plan(layers, src, by_role, default)
    out = export_plan(plan, tmp_path / name, engine=engine, max_shard_size="30KB")
    fake = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32)
    apply_plan(fake, plan, mode="fake")
    ids = torch.randint(0, 256, (2, 12), generator=torch.Generator().manual_seed(0))
    want = _logits(fake, ids)
    # autoquant's loader: QuantLinear layers, fp16 compute on the CPU reference path
    got = _logits(load_quantized(out), ids)
    assert torch.allclose(got, want, atol=2e-2, rtol=2e-2), float((got - want).abs().max())
    if engine == "transformers":  # no autoquant code on the loading side
        hf = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
        got = _logits(hf, ids)
        assert torch.allclose(got, want, atol=2e-3, rtol=2e-3), float((got - want).abs().max())
    plan_back = Plan.load(out / "autoquant_plan.json")
    assert plan_back.formats == plan.formats and plan_back.metadata["engine"] == engine
    assert (out / "README.md").read_text().startswith("# ") and (out / "generation_config.json").is_file()


def test_shards_and_index_cover_every_tensor_once(tiny, tmp_path):
    src, model, layers = tiny
    out = export_plan(Plan.uniform("int8-pc-sym", layers, str(src)), tmp_path / "ct", engine="vllm",
                      max_shard_size="40KB")
    index = json.loads((out / "model.safetensors.index.json").read_text())
    shards = sorted(out.glob("model-*.safetensors"))
    assert len(shards) > 2 and set(index["weight_map"].values()) == {p.name for p in shards}
    from safetensors import safe_open

    seen = []
    for p in shards:
        with safe_open(str(p), framework="pt") as f:
            keys = list(f.keys())
            seen += keys
            size = sum(f.get_tensor(k).numel() * f.get_tensor(k).element_size() for k in keys)
            assert size <= 40_000 or len(keys) == 1
    assert sorted(seen) == sorted(index["weight_map"])
    assert "model.layers.0.self_attn.q_proj.weight_packed" in seen and "model.layers.0.self_attn.q_proj.weight" not in seen


def _cli(capsys, *args):
    code = main(["export", "--no-progress", *args])
    return code, capsys.readouterr().err.strip()


def test_refusals_exit_2_naming_the_layer_and_reason(tiny, tmp_path, capsys):
    src, model, layers = tiny
    split = _plan(layers, src, {"q": "int4-g32-sym", "k": "int8-pc-sym", "v": "int4-g32-sym"})
    split.save(tmp_path / "split.json")
    code, err = _cli(capsys, "--plan", str(tmp_path / "split.json"), "--out", str(tmp_path / "a"))
    assert code == 2 and err.count("\n") == 0
    assert "model.layers.0.self_attn.q_proj" in err and "fused" in err and "k_proj=int8-pc-sym" in err

    code, err = _cli(capsys, "--plan", "int4-g32-asym", "--model", str(src), "--out", str(tmp_path / "b"),
                     "--engine", "transformers")
    assert code == 2 and "layer model.layers.0.self_attn.q_proj" in err and "zero points" in err

    code, err = _cli(capsys, "--plan", "int8-pc-asym", "--model", str(src), "--out", str(tmp_path / "c"))
    assert code == 2 and "layer model.layers.0.self_attn.q_proj" in err and "int8-pc-asym" in err

    code, err = _cli(capsys, "--plan", "int4-g32-sym", "--model", str(src), "--out", str(tmp_path / "d"),
                     "--engine", "vllm", "--format", "autoquant")
    assert code == 2 and "compressed-tensors" in err
    assert not any((tmp_path / d).exists() for d in "abcd")  # refused before writing anything


def test_vllm_refuses_a_group_that_does_not_divide_the_input(tmp_path):
    from transformers import LlamaConfig

    config = LlamaConfig(vocab_size=256, hidden_size=96, intermediate_size=192, num_hidden_layers=1,
                         num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(tmp_path / "m")
    with pytest.raises(UserError, match=r"layer model\.layers\.0\.self_attn\.q_proj: int4-g64-sym: input size 96"):
        export_plan(Plan.uniform("int4-g64-sym", discover_layers(AutoModelForCausalLM.from_config(config)),
                                 str(tmp_path / "m")), tmp_path / "out", engine="vllm")


def test_gpt2_conv1d_layers_are_refused_for_compressed_tensors(tmp_path):
    from tiny_models import tiny_model

    tiny_model("gpt2").save_pretrained(tmp_path / "g")
    layers = discover_layers(tiny_model("gpt2"))
    with pytest.raises(UserError, match=r"transformer\.h\.0\.attn\.c_attn is a Conv1D"):
        export_plan(Plan.uniform("int8-pc-sym", layers, str(tmp_path / "g")), tmp_path / "out")
