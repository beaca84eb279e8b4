import torch

from autoquant.apply import apply_plan, temporarily_quantized
from autoquant.formats import QuantFormat
from autoquant.layers import discover_layers, linear_weight
from autoquant.plan import Plan
from autoquant.quant import fake_quantize
from tiny_models import tiny_model

INT4 = QuantFormat.parse("int4-g32-asym")


def test_fake_plan_changes_every_weight_as_the_quantizer_does(arch):
    model = tiny_model(arch)
    original = {l.name: linear_weight(model.get_submodule(l.name)).detach().clone() for l in discover_layers(model)}
    layers = discover_layers(model)
    apply_plan(model, Plan.uniform(INT4, layers))
    for name, w in original.items():
        assert torch.equal(linear_weight(model.get_submodule(name)), fake_quantize(w, INT4)), name


def test_quantizing_a_tied_head_leaves_the_embedding_intact():
    model = tiny_model("qwen2")
    emb = model.get_input_embeddings().weight.detach().clone()
    apply_plan(model, {"lm_head": INT4})
    assert torch.equal(model.get_input_embeddings().weight, emb)
    assert not torch.equal(model.lm_head.weight, emb)


def test_temporarily_quantized_restores_the_layer():
    model = tiny_model("llama")
    ids = torch.randint(0, 256, (1, 16))
    with torch.no_grad():
        before = model(ids).logits
        with temporarily_quantized(model, {"model.layers.0.mlp.down_proj": QuantFormat.parse("int4-pc-sym")}):
            during = model(ids).logits
        after = model(ids).logits
    assert not torch.allclose(before, during)
    assert torch.equal(before, after)


def test_packed_mode_matches_fake_mode():
    ids = torch.randint(0, 256, (2, 8))
    fake = tiny_model("llama")
    packed = tiny_model("llama")
    plan = Plan.uniform(QuantFormat.parse("int8-pc-sym"), discover_layers(fake))
    apply_plan(fake, plan, mode="fake")
    apply_plan(packed, plan, mode="packed")
    with torch.no_grad():
        a = fake(ids).logits
        b = packed(ids).logits.float()
    assert torch.allclose(a, b, atol=5e-2, rtol=5e-2)


def test_a_tied_head_in_a_block_format_quantizes_the_shared_embedding():
    """As a GGUF file holds it: one token_embd, read by the lookup and the output alike."""
    q4 = QuantFormat.parse("q4_0")
    model = tiny_model("qwen2")
    w = model.lm_head.weight.detach().clone()
    with temporarily_quantized(model, {"lm_head": q4}):
        assert model.get_input_embeddings().weight is model.lm_head.weight
        assert torch.equal(model.get_input_embeddings().weight, fake_quantize(w, q4))
    assert model.get_input_embeddings().weight is model.lm_head.weight and torch.equal(model.lm_head.weight, w)
    apply_plan(model, {"lm_head": q4})
    assert model.get_input_embeddings().weight is model.lm_head.weight
    assert torch.equal(model.lm_head.weight, fake_quantize(w, q4))
