import pytest
import torch

from autoquant.layers import discover_layers, layer_role, linear_weight
from autoquant.models import build_meta_model
from tiny_models import tiny_config, tiny_model

EXPECTED_ROLES = {
    "llama": ["q", "k", "v", "o", "gate", "up", "down"],
    "qwen2": ["q", "k", "v", "o", "gate", "up", "down"],
    "mistral": ["q", "k", "v", "o", "gate", "up", "down"],
    "gpt2": ["qkv", "o", "up", "down"],
}


def test_discovery_on_four_architectures(arch):
    model = tiny_model(arch)
    layers = discover_layers(model)
    per_block = EXPECTED_ROLES[arch]
    assert [l.role for l in layers] == per_block * 2 + ["lm_head"]
    assert [l.block for l in layers[:-1]] == [0] * len(per_block) + [1] * len(per_block)
    assert layers[-1].block is None
    for layer in layers:  # the discovered shape is the [out, in] shape of the weight
        w = linear_weight(model.get_submodule(layer.name))
        assert tuple(w.shape) == layer.shape


def test_gqa_shapes_and_tying():
    layers = {l.role + str(l.block): l for l in discover_layers(tiny_model("llama"))}
    assert layers["q0"].shape == (64, 64) and layers["k0"].shape == (32, 64)  # 2 kv heads of 16
    assert layers["down0"].shape == (64, 128)
    assert not layers["lm_headNone"].tied
    qwen_head = discover_layers(tiny_model("qwen2"))[-1]
    assert qwen_head.role == "lm_head" and qwen_head.tied
    gpt2_head = discover_layers(tiny_model("gpt2"))[-1]
    assert gpt2_head.tied  # GPT-2 ties its output layer to wte


def test_gpt2_conv1d_shape_is_out_by_in():
    layers = discover_layers(tiny_model("gpt2"))
    assert layers[0].name.endswith("attn.c_attn") and layers[0].shape == (192, 64)
    assert layers[2].shape == (256, 64) and layers[3].shape == (64, 256)


def test_discovery_on_meta_device_reads_no_weights(arch):
    model = build_meta_model(tiny_config(arch))
    assert next(model.parameters()).device == torch.device("meta")
    assert len(discover_layers(model)) == len(EXPECTED_ROLES[arch]) * 2 + 1


@pytest.mark.parametrize(
    "name,role",
    [("model.layers.3.self_attn.q_proj", "q"), ("transformer.h.0.mlp.c_proj", "down"),
     ("transformer.h.0.attn.c_proj", "o"), ("model.layers.1.mlp.gate_up_proj", "gate_up"),
     ("score", "other")],
)
def test_roles_from_names(name, role):
    assert layer_role(name) == role
