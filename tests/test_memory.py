"""The memory model, checked on Llama-2-7B from its config alone (meta device)."""

import json

import pytest

from autoquant.formats import QuantFormat
from autoquant.memory import ModelShape, estimate_memory
from autoquant.models import resolve_model
from autoquant.plan import Plan

LLAMA2_7B = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096,
    "intermediate_size": 11008, "num_attention_heads": 32, "num_hidden_layers": 32,
    "num_key_value_heads": 32, "vocab_size": 32000, "max_position_embeddings": 4096,
    "rms_norm_eps": 1e-5, "tie_word_embeddings": False, "torch_dtype": "float16",
}


@pytest.fixture(scope="module")
def llama2_7b(tmp_path_factory):
    d = tmp_path_factory.mktemp("llama-2-7b")
    (d / "config.json").write_text(json.dumps(LLAMA2_7B))
    return ModelShape.from_source(resolve_model(str(d)))


def test_llama2_7b_fp16_weights_are_13_48_gb(llama2_7b):
    est = estimate_memory(llama2_7b, Plan.uniform("fp16", list(llama2_7b.layers)))
    assert llama2_7b.total_params == 6_738_415_616
    assert abs(est.weights_bytes / 13.48e9 - 1) < 0.01


def test_llama2_7b_int4_g128_matches_a_hand_count(llama2_7b):
    est = estimate_memory(llama2_7b, Plan.uniform("int4-g128-asym", list(llama2_7b.layers)))
    h, i, v, n = 4096, 11008, 32000, 32
    def int4_g128_asym(out_f, in_f):  # half a byte a weight + fp16 scale + uint8 zero per 128
        return out_f * in_f // 2 + out_f * (in_f // 128) * 3
    per_block = 4 * int4_g128_asym(h, h) + 2 * int4_g128_asym(i, h) + int4_g128_asym(h, i)
    by_hand = n * per_block + int4_g128_asym(v, h) + v * h * 2 + (2 * n + 1) * h * 2
    assert abs(est.weights_bytes / by_hand - 1) < 0.02
    assert est.weights_bytes < 0.3 * 13.48e9


def test_llama2_7b_kv_cache_at_4096_is_2_gib(llama2_7b):
    est = estimate_memory(llama2_7b, Plan.uniform("fp16", list(llama2_7b.layers)), batch=1, context=4096)
    assert est.kv_cache_bytes == 2 * 2**30
    assert estimate_memory(llama2_7b, Plan.uniform("fp16", list(llama2_7b.layers)), batch=4, context=1024).kv_cache_bytes == 2 * 2**30


def test_total_is_the_sum_of_its_parts(llama2_7b):
    est = estimate_memory(llama2_7b, Plan.uniform("int8-pc-sym", list(llama2_7b.layers)), batch=2, context=512)
    d = est.to_dict()
    assert d["total_bytes"] == d["weights_bytes"] + d["kv_cache_bytes"] + d["activation_bytes"] + d["overhead_bytes"]
    assert d["total_bytes"] > d["weights_bytes"] > 0


def test_tied_lm_head_costs_nothing_extra_until_quantized():
    from autoquant.memory import linear_bytes
    from tiny_models import tiny_model

    shape = ModelShape.from_model(tiny_model("qwen2"))  # tied
    head = shape.layers[-1]
    fp16 = Plan.uniform("fp16", list(shape.layers))
    int8 = Plan.uniform("fp16", list(shape.layers))
    int8.formats[head.name] = QuantFormat.parse("int8-pc-sym")
    assert linear_bytes(shape, int8) - linear_bytes(shape, fp16) == head.out_features * head.in_features + head.out_features * 2


def test_tied_lm_head_in_a_block_format_replaces_the_embedding():
    """GGUF keeps one token_embd for both roles: a q4_0 head is that tensor, not a copy."""
    from autoquant.memory import embedding_bytes, layer_weight_bytes, linear_bytes
    from tiny_models import tiny_model

    shape = ModelShape.from_model(tiny_model("qwen2"))  # tied, vocab 256 x hidden 64
    head = shape.layers[-1]
    fp16 = Plan.uniform("fp16", list(shape.layers))
    q4 = Plan.uniform("fp16", list(shape.layers))
    q4.formats[head.name] = QuantFormat.parse("q4_0")
    q4_bytes = 256 * 64 // 32 * 18  # 18 bytes a 32-weight block
    assert linear_bytes(shape, q4) - linear_bytes(shape, fp16) == q4_bytes
    assert embedding_bytes(shape, fp16) - embedding_bytes(shape, q4) == 256 * 64 * 2
    whole = estimate_memory(shape, q4).weights_bytes - estimate_memory(shape, fp16).weights_bytes
    assert whole == q4_bytes - 256 * 64 * 2 == layer_weight_bytes(shape, head, QuantFormat.parse("q4_0"))
