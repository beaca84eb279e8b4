import pytest
import torch

from autoquant.errors import UserError
from autoquant.export import export_checkpoint, load_quantized
from autoquant.formats import QuantFormat
from autoquant.layers import discover_layers
from autoquant.models import load_model, resolve_model
from autoquant.plan import Plan


def _mixed_plan(layers):
    plan = Plan.uniform("int4-g32-asym", layers)
    plan.formats[layers[0].name] = QuantFormat.parse("fp16")
    plan.formats[layers[1].name] = QuantFormat.parse("int8-pc-sym")
    return plan


def test_export_then_load_gives_the_packed_model(tiny_model_dir, tmp_path):
    from autoquant.kernels import QuantLinear

    source = resolve_model(str(tiny_model_dir))
    layers = discover_layers(load_model(source))
    plan = _mixed_plan(layers)
    out = export_checkpoint(source, plan, tmp_path / "export")
    assert (out / "autoquant_plan.json").is_file() and (out / "model.safetensors").is_file()
    loaded = load_quantized(out)
    assert isinstance(loaded.get_submodule(layers[1].name), QuantLinear)
    assert loaded.get_submodule(layers[1].name).format == QuantFormat.parse("int8-pc-sym")
    assert not isinstance(loaded.get_submodule(layers[0].name), QuantLinear)
    # Same numbers as quantizing in memory (fake-quant in fp32 vs packed fp16 reference path)
    fake = load_model(source)
    from autoquant.apply import apply_plan

    apply_plan(fake, plan, mode="fake")
    ids = torch.randint(0, 256, (2, 12))
    with torch.no_grad():
        a = fake(ids).logits
        b = loaded(ids).logits.float()
    assert torch.allclose(a, b, atol=3e-2, rtol=3e-2), float((a - b).abs().max())
    # 4-bit weights make the checkpoint smaller than the fp16 one would be
    size = (out / "model.safetensors").stat().st_size
    fp16_size = sum(p.numel() * 2 for p in fake.parameters())
    assert size < 0.75 * fp16_size


def test_export_refuses_a_non_empty_directory(tiny_model_dir, tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep").write_text("")
    source = resolve_model(str(tiny_model_dir))
    with pytest.raises(UserError, match="not empty"):
        export_checkpoint(source, Plan.uniform("fp16", discover_layers(load_model(source))), tmp_path / "x")
    with pytest.raises(UserError, match="not an autoquant checkpoint"):
        load_quantized(tmp_path / "x")
