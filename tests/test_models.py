"""Model resolution and loading: gguf, local directory, config-only directory, hub id."""

import json

import pytest

from autoquant.errors import UserError
from autoquant.memory import ModelShape
from autoquant.models import fingerprint, load_config, load_model, resolve_model


def test_default_is_the_embedded_gguf():
    source = resolve_model(None)
    assert source.kind == "gguf" and source.gguf_file.endswith(".gguf")
    assert "SmolLM2" in source.display


def test_local_directory_loads_weights(tiny_model_dir):
    source = resolve_model(str(tiny_model_dir))
    assert source.kind == "dir" and source.has_weights
    model = load_model(source)
    assert model.config.model_type == "llama" and not next(model.parameters()).is_meta


def test_config_only_directory_plans_without_weights(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({
        "model_type": "llama", "hidden_size": 8192, "intermediate_size": 28672, "num_hidden_layers": 80,
        "num_attention_heads": 64, "num_key_value_heads": 8, "vocab_size": 32000}))
    source = resolve_model(str(tmp_path))
    assert not source.has_weights
    shape = ModelShape.from_source(source)  # a 70B model, on the meta device, in about a second
    assert 68e9 < shape.total_params < 70e9
    with pytest.raises(UserError, match="only a config"):
        load_model(source)


def test_fingerprint_changes_with_the_weights(tiny_model_dir):
    source = resolve_model(str(tiny_model_dir))
    before = fingerprint(source)
    assert before == fingerprint(source)
    weights = next(tiny_model_dir.glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:-8] + b"\x00" * 8 if weights.read_bytes()[:8] else b"")
    (tiny_model_dir / "config.json").write_text((tiny_model_dir / "config.json").read_text().replace("64", "64 "))
    assert fingerprint(source) != before


@pytest.mark.parametrize(
    "spec,match",
    [("./does/not/exist", "neither an existing path"), ("missing.gguf", "not found"),
     ("a/b/c", "neither an existing path"), ("no-such-org/no-such-model", "unknown model")],
)
def test_bad_model_specs_are_one_line_user_errors(spec, match):
    with pytest.raises(UserError, match=match) as info:
        load_config(resolve_model(spec))
    assert "\n" not in str(info.value)


def test_directory_without_config_is_refused(tmp_path):
    with pytest.raises(UserError, match="no config.json"):
        resolve_model(str(tmp_path))


def test_unsupported_architecture_is_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "vit", "hidden_size": 32}))
    with pytest.raises(UserError, match="unsupported architecture 'vit'"):
        load_config(resolve_model(str(tmp_path)))


@pytest.mark.slow
def test_embedded_smollm2_loads_and_speaks(smollm2):
    source, model, tokenizer = smollm2
    assert model.config.model_type == "llama" and model.config.num_hidden_layers == 30
    ids = tokenizer("The capital of France is", return_tensors="pt").input_ids
    out = model.generate(ids, max_new_tokens=3, do_sample=False)
    assert "Paris" in tokenizer.decode(out[0, ids.shape[1]:])
