from __future__ import annotations

import json

from autoquant.cli import main


def _config_dir(tmp_path):
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 128,
           "intermediate_size": 256, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
           "vocab_size": 512, "max_position_embeddings": 256, "tie_word_embeddings": False}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    return str(tmp_path)


def test_list_shows_specs(capsys) -> None:
    assert main(["hardware", "list"]) == 0
    out = capsys.readouterr().out
    assert "h100" in out and "rtx4090" in out and "b200" in out


def test_list_json(capsys) -> None:
    assert main(["hardware", "list", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert {s["name"] for s in d["specs"]} >= {"h100", "a100", "l4"}


def test_latency_without_profile_says_estimated(tmp_path, capsys) -> None:
    assert main(["hardware", "latency", "--model", _config_dir(tmp_path), "--plan", "int4-g128-asym",
                 "--hardware", "A100", "--context", "512"]) == 0
    assert "estimated" in capsys.readouterr().out
    assert main(["hardware", "latency", "--model", _config_dir(tmp_path), "--hardware", "l4", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["estimated"] is True and d["decode_s"] > 0 and d["prefill_s"] > d["decode_s"]


def test_bad_input_is_one_line_exit_2(tmp_path, capsys) -> None:
    assert main(["hardware", "latency", "--model", _config_dir(tmp_path), "--hardware", "voodoo5"]) == 2
    err = capsys.readouterr().err
    assert "unknown GPU" in err and len(err.strip().splitlines()) == 1


def test_profile_needs_a_gpu(tmp_path, capsys, monkeypatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["hardware", "profile", "--model", _config_dir(tmp_path)]) == 2
    assert "CUDA GPU" in capsys.readouterr().err
