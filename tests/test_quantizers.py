"""GPTQ and AWQ against round-to-nearest and against the published algorithm, on one layer;
the plan-level application (awq folding, gptq through apply_plan) on tiny models."""

from __future__ import annotations

import json

import pytest
import torch

from autoquant.apply import apply_plan, awq_fold_target
from autoquant.calibration import input_moments, needs_calibration
from autoquant.errors import UserError
from autoquant.formats import QuantFormat
from autoquant.layers import discover_layers, linear_weight
from autoquant.plan import Plan
from autoquant.quant import choose_qparams, dequantize, quantize, quantize_codes
from autoquant.quantizers import awq_scales, fake_quantize_weight, gptq, output_error, quantize_weight
from autoquant.sensitivity.statistics import collect_statistics

INT4_ASYM = QuantFormat.parse("int4-g32-asym")
INT4_SYM = QuantFormat.parse("int4-g32-sym")
INT8_PC = QuantFormat.parse("int8-pc-sym")


def _activations(n: int, k: int, seed: int) -> torch.Tensor:
    """Correlated inputs with a few loud channels, like a transformer's: where GPTQ/AWQ help.
    One distribution (fixed mixing); `seed` draws different tokens from it."""
    g = torch.Generator().manual_seed(1234)
    mix = torch.randn(k, k, generator=g) / k**0.5 + torch.eye(k)
    loud = torch.ones(k)
    loud[torch.randperm(k, generator=g)[: k // 16]] = 8.0
    return (torch.randn(n, k, generator=torch.Generator().manual_seed(seed)) @ mix) * loud


def _layer(n_out: int = 48, k: int = 128, seed: int = 0):
    g = torch.Generator().manual_seed(seed + 100)
    w = torch.randn(n_out, k, generator=g) * 0.05
    x_cal, x_test = _activations(2048, k, seed), _activations(2048, k, seed + 1)
    return w, x_cal.T @ x_cal / len(x_cal), x_test


def _reference_gptq(w: torch.Tensor, fmt: QuantFormat, h: torch.Tensor, damp: float = 0.01) -> torch.Tensor:
    """Algorithm 1 of the GPTQ paper in its plain OBS form: after each column, the inverse
    Hessian of the remaining columns by Gaussian elimination (no Cholesky, no blocks)."""
    w = w.double().clone()
    h = h.double().clone()
    k = w.shape[1]
    h += damp * torch.diag(h).mean() * torch.eye(k, dtype=h.dtype)
    hinv = torch.linalg.inv(h)
    group = fmt.effective_group(k)
    out = torch.zeros_like(w)
    for q in range(k):
        if q % group == 0:
            s, z = choose_qparams(w[:, q : q + group], fmt)
        codes = quantize_codes(w[:, q : q + 1], fmt, s, z).double()
        zq = float(fmt.sym_zero) if z is None else z.double()
        out[:, q] = ((codes - zq) * s.double())[:, 0]
        err = (w[:, q] - out[:, q]) / hinv[q, q]
        w[:, q:] -= err.unsqueeze(1) * hinv[q, q:].unsqueeze(0)
        hinv = hinv - hinv[:, q : q + 1] @ hinv[q : q + 1, :] / hinv[q, q]
    return out


@pytest.mark.parametrize("fmt", [INT4_ASYM, INT4_SYM, INT8_PC], ids=str)
def test_gptq_matches_the_published_algorithm(fmt):
    w, h, _ = _layer()
    ours = dequantize(gptq(w, fmt, h)).double()
    ref = _reference_gptq(w, fmt, h)
    # same codes up to a rare tie flipped by float rounding (different operation order)
    mismatch = (ours - ref).abs().gt(1e-4).float().mean().item()
    assert mismatch < 0.01, mismatch


@pytest.mark.parametrize("fmt", [INT4_ASYM, INT4_SYM], ids=str)
def test_gptq_and_awq_beat_rtn_on_held_out_activations(fmt):
    w, h, x_test = _layer()
    h_test = x_test.T @ x_test / len(x_test)
    rtn = output_error(w, dequantize(quantize(w, fmt)), h_test)
    g = output_error(w, dequantize(gptq(w, fmt, h)), h_test)
    a = output_error(w, fake_quantize_weight(w, fmt, "awq", h), h_test)
    assert g < 0.7 * rtn, (g, rtn)
    assert a < rtn, (a, rtn)


def test_gptq_output_is_an_ordinary_quantized_weight():
    w, h, _ = _layer(n_out=16, k=100)  # K not a multiple of the group: a short last group
    qw = quantize_weight(w, INT4_ASYM, "gptq", h)
    ref = quantize(w, INT4_ASYM)
    assert qw.codes.shape == ref.codes.shape and qw.codes.dtype == torch.uint8
    assert qw.scales.shape == ref.scales.shape and qw.scales.dtype == torch.float16
    assert qw.zeros.shape == ref.zeros.shape and qw.nbytes == ref.nbytes == INT4_ASYM.storage_bytes(16, 100)


def test_gptq_with_identity_moment_is_rtn():
    """With uncorrelated, equal inputs there is no error to spread: GPTQ rounds to nearest."""
    w, _, _ = _layer(n_out=8, k=64)
    qw = gptq(w, INT4_ASYM, torch.eye(64), damp=0.0)
    assert torch.equal(dequantize(qw), dequantize(quantize(w, INT4_ASYM)))


def test_awq_scales_never_lose_to_rtn_on_calibration():
    w, h, _ = _layer()
    s = awq_scales([w], [INT4_ASYM], h)
    assert s.shape == (w.shape[1],) and torch.isfinite(s).all()
    awq = output_error(w, dequantize(quantize(w * s, INT4_ASYM)) / s, h)
    assert awq <= output_error(w, dequantize(quantize(w, INT4_ASYM)), h) + 1e-9


# ---- plans on tiny models ---------------------------------------------------------
def _calib(model, n: int = 4, seq: int = 32):
    ids = torch.randint(0, model.config.vocab_size, (n, seq), generator=torch.Generator().manual_seed(0))
    return collect_statistics(model, discover_layers(model), ids, with_grads=False), ids


def _logits(model, ids):
    with torch.no_grad():
        return model(ids, use_cache=False).logits


@pytest.mark.parametrize("quantizer", ["gptq", "awq"])
def test_uniform_plan_fake_and_packed_agree(quantizer):
    from tiny_models import tiny_model

    fp = tiny_model("llama")
    stats, ids = _calib(fp)
    layers = [l for l in discover_layers(fp) if l.role != "lm_head"]
    plan = Plan.uniform("int4-g32-asym", layers, quantizer=quantizer)
    assert needs_calibration(plan)
    fake = apply_plan(tiny_model("llama"), plan, "fake", stats)
    packed = apply_plan(tiny_model("llama"), plan, "packed", stats)
    rtn = apply_plan(tiny_model("llama"), Plan.uniform("int4-g32-asym", layers), "fake")
    ref = _logits(fp, ids)
    err = (_logits(fake, ids) - ref).pow(2).mean()
    assert torch.allclose(_logits(packed, ids), _logits(fake, ids), atol=2e-2)  # fp16 activations in packed
    if quantizer == "gptq":  # a random model has no loud channels for awq to protect
        assert err < 0.9 * (_logits(rtn, ids) - ref).pow(2).mean()  # on its own calibration tokens


def test_awq_fold_computes_what_the_layer_alone_would():
    """Folding 1/s into up_proj's rows and quantizing W diag(s) is the model that runs
    Q(W diag(s)) diag(s)^-1 in down_proj's place: the fold changes nothing else."""
    from tiny_models import tiny_model

    stats, ids = _calib(tiny_model("llama"))
    name = "model.layers.1.mlp.down_proj"
    folded = apply_plan(tiny_model("llama"), Plan({name: INT4_ASYM}, quantizers={name: "awq"}), "fake", stats)
    alone = tiny_model("llama")
    w = alone.get_submodule(name).weight
    h = torch.as_tensor(stats.moment(name))
    w.data = fake_quantize_weight(w.detach(), INT4_ASYM, "awq", h)
    assert not torch.equal(folded.get_submodule("model.layers.1.mlp.up_proj").weight, alone.get_submodule("model.layers.1.mlp.up_proj").weight)
    assert torch.allclose(_logits(folded, ids), _logits(alone, ids), atol=1e-4)


def test_awq_folds_into_norm_and_up_proj():
    from tiny_models import tiny_model

    model = tiny_model("llama")
    assert awq_fold_target(model, "model.layers.0.self_attn.k_proj") == ("model.layers.0.input_layernorm", "norm")
    assert awq_fold_target(model, "model.layers.1.mlp.down_proj") == ("model.layers.1.mlp.up_proj", "rows")
    assert awq_fold_target(model, "model.layers.0.self_attn.o_proj") is None
    assert awq_fold_target(tiny_model("gpt2"), "transformer.h.0.mlp.c_proj") is None


def test_awq_on_a_layer_without_a_fold_target_is_a_user_error():
    from tiny_models import tiny_model

    model = tiny_model("llama")
    stats, _ = _calib(model)
    layers = discover_layers(model)
    plan = Plan.uniform("int4-g32-asym", layers, quantizer="awq")
    assert plan.quantizer_of("model.layers.0.self_attn.o_proj") == "rtn"  # uniform awq: where it folds
    plan.quantizers["model.layers.0.self_attn.o_proj"] = "awq"
    with pytest.raises(UserError, match="o_proj"):
        apply_plan(model, plan, "fake", stats)


def test_plan_records_quantizers_and_reads_version_1(tmp_path):
    from tiny_models import tiny_model

    layers = discover_layers(tiny_model("llama"))
    plan = Plan.uniform("int4-g128-asym", layers, quantizer="gptq")
    plan.quantizers[layers[0].name] = "awq"
    back = Plan.load(plan.save(tmp_path / "p.json"))
    assert back.quantizer_of(layers[0]) == "awq" and back.quantizer_of(layers[1]) == "gptq"
    d = json.loads((tmp_path / "p.json").read_text())
    assert d["autoquant_plan_version"] == 2 and set(d["quantizers"]) == set(d["layers"])
    d["autoquant_plan_version"] = 1
    del d["quantizers"]
    v1 = Plan.from_dict(d)
    assert all(v1.quantizer_of(l) == "rtn" for l in layers) and not needs_calibration(v1)
    d["autoquant_plan_version"], d["quantizers"] = 2, {layers[0].name: "magic"}
    with pytest.raises(UserError, match="magic"):
        Plan.from_dict(d)


def test_input_moments_come_from_the_sensitivity_hooks():
    from tiny_models import tiny_model

    model = tiny_model("llama")
    stats, ids = _calib(model)
    x = []
    h = model.model.layers[0].self_attn.q_proj.register_forward_pre_hook(lambda m, a: x.append(a[0].reshape(-1, 64)))
    _logits(model, ids)
    h.remove()
    xs = torch.cat(x)
    assert torch.allclose(torch.as_tensor(stats.moment("model.layers.0.self_attn.v_proj")), xs.T @ xs / len(xs), atol=1e-4)
    assert linear_weight(model.model.layers[0].self_attn.q_proj).shape == (64, 64)
    assert callable(input_moments)


# ---- the choice in spaces, profiles and the search ----------------------------------
def test_space_quantizers_per_role_and_awq_only_where_it_folds():
    from autoquant.space import load_space, parse_space
    from autoquant.layers import LinearLayer

    space = parse_space({"formats": {"default": ["fp16", "int4-g128-asym"]},
                         "quantizers": {"default": ["rtn", "gptq", "awq"], "down": ["rtn"]}})
    q = LinearLayer("m.layers.0.self_attn.q_proj", 8, 8, "q", 0)
    o = LinearLayer("m.layers.0.self_attn.o_proj", 8, 8, "o", 0)
    down = LinearLayer("m.layers.0.mlp.down_proj", 8, 8, "down", 0)
    assert space.quantizers_for(q) == ["rtn", "gptq", "awq"]
    assert space.quantizers_for(o) == ["rtn", "gptq"]
    assert space.quantizers_for(down) == ["rtn"]
    assert parse_space({"formats": {"default": ["fp16"]}}).quantizers_for(q) == ["rtn"]  # absent: rtn only
    assert "awq" in load_space(None).quantizers_for(q)  # the default space lets the search choose
    with pytest.raises(UserError, match="quantizers.default"):
        parse_space({"formats": {"default": ["fp16"]}, "quantizers": {"default": ["magic"]}})


def test_profile_targets_name_each_format_and_quantizer():
    from tiny_models import tiny_model
    from autoquant.sensitivity.profile import profile_targets
    from autoquant.space import parse_space

    model = tiny_model("llama")
    space = parse_space({"formats": {"default": ["fp16", "int4-g32-asym"]}, "quantizers": {"default": ["rtn", "gptq", "awq"]}})
    targets = profile_targets(discover_layers(model), space, model)
    assert targets["model.layers.0.mlp.down_proj"] == ["int4-g32-asym", "int4-g32-asym@gptq", "int4-g32-asym@awq"]
    assert targets["model.layers.0.self_attn.o_proj"] == ["int4-g32-asym", "int4-g32-asym@gptq"]


def test_table_keeps_the_least_kl_quantizer_and_the_search_plan_uses_it():
    from autoquant.sensitivity.table import SensitivityEntry, best_quantizers

    entries = [
        SensitivityEntry("a", "int4-g128-asym", 1.0, None, None, "rtn"),
        SensitivityEntry("a", "int4-g128-asym", 0.4, None, None, "gptq"),
        SensitivityEntry("a", "int4-g128-asym", 0.5, 0.9, None, "awq"),  # measured: its KL counts
        SensitivityEntry("a", "int8-pc-sym", 0.1, None, None, "rtn"),
    ]
    best, rest = best_quantizers(entries, proxy_to_kl=2.0)
    assert best[("a", "int4-g128-asym")].quantizer == "gptq" and best[("a", "int8-pc-sym")].quantizer == "rtn"
    assert len(rest) == 2


def test_exported_gptq_awq_plan_loads_with_the_fake_quantized_numbers(tiny_model_dir, tmp_path):
    from autoquant.export import export_checkpoint, load_quantized
    from autoquant.models import load_model, resolve_model

    source = resolve_model(str(tiny_model_dir))
    model = load_model(source)
    stats, ids = _calib(model)
    layers = discover_layers(model)
    plan = Plan.uniform("int4-g32-asym", layers, quantizer="gptq")
    for l in layers:
        if l.role in ("gate", "up", "down"):
            plan.quantizers[l.name] = "awq"
    out = export_checkpoint(source, plan, tmp_path / "export", calibration=stats)
    loaded = load_quantized(out)
    assert Plan.load(out / "autoquant_plan.json").quantizers == plan.quantizers
    fake = apply_plan(load_model(source), plan, "fake", stats)
    a, b = _logits(fake, ids), _logits(loaded, ids).float()
    assert torch.allclose(a, b, atol=3e-2, rtol=3e-2), float((a - b).abs().max())


@pytest.mark.parametrize("args,match", [
    (["estimate", "--plan", "int4-g128-asym", "--quantizer", "magic"], "--quantizer: unknown quantizer"),
    (["estimate", "--plan", "plan.json", "--quantizer", "gptq"], "applies to a uniform --plan"),
])
def test_cli_quantizer_errors_are_one_line(args, match, tmp_path, monkeypatch, capsys):
    from autoquant.cli import main

    monkeypatch.chdir(tmp_path)
    Plan.uniform("int4-g128-asym", []).save(tmp_path / "plan.json")
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert match in err and len(err.splitlines()) == 1
