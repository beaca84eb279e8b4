"""SearchProblem: plans from choices, costs that agree with the memory and latency models."""

from __future__ import annotations

import math
import random

import pytest
from search_fixtures import SMALL_SPACE, SyntheticTable, problem, smollm2_shape, tiny_shape

from autoquant.costs import QualityBudget
from autoquant.formats import FP16, QuantFormat
from autoquant.hardware import latency_model_for, plan_latency
from autoquant.memory import estimate_memory
from autoquant.costs import Budgets
from autoquant.search.objectives import group_label
from autoquant.space import parse_space

INT4 = QuantFormat.parse("int4-g128-asym")
INT8 = QuantFormat.parse("int8-pc-sym")


def _random_choices(p, n: int, seed: int = 0) -> list[list[int]]:
    rng = random.Random(seed)
    return [[rng.randrange(len(g.choices)) for g in p.groups] for _ in range(n)]


def test_groups_partition_layers_and_respect_ties() -> None:
    p = problem(tiny_shape())
    names = [n for g in p.groups for n in g.layers]
    assert sorted(names) == sorted(l.name for l in p.layers)
    qkv = next(g for g in p.groups if "q_proj" in g.label)
    assert len(qkv.layers) == 3 and qkv.label == "model.layers.0.self_attn.q_proj|k_proj|v_proj"
    plan = p.plan(_random_choices(p, 1)[0])
    assert len({plan.format_of(n) for n in qkv.layers}) == 1


def test_choice_roundtrips_through_plan_and_params() -> None:
    p = problem(tiny_shape())
    for choice in _random_choices(p, 20):
        assert p.choice_of(p.plan(choice)) == choice
        assert p.choice_from_params(p.params_of(choice)) == choice


def test_costs_agree_with_memory_and_latency_models() -> None:
    """The precomputed per-group sums must equal the whole-plan models exactly."""
    shape = tiny_shape()
    p = problem(shape, batch=2, context=128)
    model = latency_model_for("h100")
    for choice in _random_choices(p, 10):
        plan = p.plan(choice)
        costs = p.costs(choice)
        mem = estimate_memory(shape, plan, 2, 128)
        assert costs.memory_bytes == mem.total_bytes
        assert p.weight_bytes(choice) == mem.linear_bytes
        lat = plan_latency(shape, plan, model, 2, 128)
        assert costs.decode_s == pytest.approx(lat.decode_s, rel=1e-12)
        assert costs.prefill_s == pytest.approx(lat.prefill_s, rel=1e-12)
        assert costs.latency_estimated is lat.estimated is True  # a roofline is never measured


def test_proxy_is_the_sum_of_table_entries() -> None:
    p = problem(tiny_shape(), seed=0)
    choice = _random_choices(p, 1, seed=3)[0]
    plan = p.plan(choice)
    t = SyntheticTable(p.layers, 0)
    assert p.proxy_kl(choice) == pytest.approx(sum(t.estimated_kl(n, f) for n, f in plan.formats.items()))


def test_each_layer_takes_the_allowed_quantizer_of_least_kl() -> None:
    """Quantizers cost no bytes: a plan's layers get the best the space allows, and its proxy
    counts that quantizer's KL; the choices (Optuna's parameters) are still formats only."""
    space = parse_space(SMALL_SPACE | {"quantizers": {"default": ["rtn", "gptq", "awq"], "lm_head": ["rtn"]}})
    p = problem(tiny_shape(tied=False), space)
    t = SyntheticTable(p.layers, 0)
    for choice in _random_choices(p, 10, seed=5):
        plan = p.plan(choice)
        for name, fmt in plan.formats.items():
            want = "rtn" if fmt.is_float or name == "lm_head" else "gptq"  # gptq's factor is the least
            assert plan.quantizer_of(name) == want, (name, fmt)
        assert p.proxy_kl(choice) == pytest.approx(sum(t.estimated_kl(n, f, plan.quantizer_of(n))
                                                       for n, f in plan.formats.items()))
        assert p.choice_of(plan) == choice and p.choice_from_params(p.params_of(choice)) == choice
    # awq alone: o_proj keeps rtn (its scale has nowhere to fold)
    awq = problem(tiny_shape(), parse_space(SMALL_SPACE | {"quantizers": {"default": ["rtn", "awq"]}}))
    plan = awq.plan([len(g.choices) - 1 for g in awq.groups])  # the last choice: int4 or int8
    assert plan.quantizer_of("model.layers.0.self_attn.q_proj") == "awq"
    assert plan.quantizer_of("model.layers.0.self_attn.o_proj") == "rtn"


def test_tied_lm_head_quantized_costs_an_extra_copy() -> None:
    shape = tiny_shape(tied=True)
    p = problem(shape)
    lm = next(g for g in p.groups if g.label == "lm_head")
    assert lm.weight_bytes[lm.choices.index(FP16)] == 0  # shares the embedding
    assert lm.weight_bytes[lm.choices.index(INT8)] == 256 * 64 + 256 * 2  # codes + fp16 scales


def test_extremes_bound_every_plan() -> None:
    p = problem(smollm2_shape(), parse_space(SMALL_SPACE))
    smallest = p.costs(p.smallest_choice()).memory_bytes
    fastest = p.costs(p.fastest_choice()).decode_s
    best = p.costs(p.best_quality_choice()).proxy_kl
    assert best == 0.0
    for choice in _random_choices(p, 30):
        c = p.costs(choice)
        assert smallest <= c.memory_bytes and fastest <= c.decode_s + 1e-15


def test_uniform_choice_falls_back_to_nearest_bits() -> None:
    space = parse_space({**SMALL_SPACE, "lm_head": {"formats": ["fp16", "int8-pc-sym"], "tied": "search"}})
    p = problem(tiny_shape(), space)
    plan = p.plan(p.uniform_choice(INT4))
    assert plan.format_of("lm_head") == INT8  # lm_head may not go to int4: nearest allowed
    assert plan.format_of("model.layers.1.mlp.down_proj") == INT4
    assert p.uniform_choice(QuantFormat.parse("int4-pc-sym")) is None


def test_budget_constraints() -> None:
    p = problem(tiny_shape())
    c = p.costs(p.smallest_choice())
    assert c.fits(Budgets(c.memory_bytes))
    assert not c.fits(Budgets(c.memory_bytes - 1))
    assert not c.fits(Budgets(10**12, latency_s=c.decode_s / 2))
    assert Budgets(1, quality=QualityBudget("ppl", 0.03)).proxy_kl_limit() == pytest.approx(math.log(1.03))
    assert Budgets(1, quality=QualityBudget("kl", 0.05)).proxy_kl_limit() == 0.05


def test_no_latency_model_means_two_objectives() -> None:
    p = problem(tiny_shape(), latency=False)
    c = p.costs(p.smallest_choice())
    assert math.isnan(c.decode_s) and c.latency_estimated


def test_group_label() -> None:
    assert group_label(["a.b.gate_proj", "a.b.up_proj"]) == "a.b.gate_proj|up_proj"
    assert group_label(["x"]) == "x"



def test_tied_lm_head_in_a_block_format_sums_to_the_memory_model(monkeypatch) -> None:
    """In the llamacpp space a tied head is the GGUF token_embd: a block format on it makes the
    weights smaller than f16's, and the DP's per-group sums track the memory model exactly."""
    import search_fixtures

    from autoquant.space import load_space

    for f in ("q8_0", "q5_1", "q5_0", "q4_1", "q4_0"):
        monkeypatch.setitem(search_fixtures.FORMAT_FACTOR, f, 1.0)
    shape = tiny_shape(tied=True)
    p = problem(shape, load_space("llamacpp"))
    lm = next(g for g in p.groups if g.label == "lm_head")
    assert lm.searched and lm.weight_bytes[lm.choices.index(QuantFormat.parse("q4_0"))] < 0 == lm.weight_bytes[0]
    offsets = set()
    for choice in _random_choices(p, 20):
        offsets.add(estimate_memory(shape, p.plan(choice), 1, 256).weights_bytes - p.weight_bytes(choice))
    assert len(offsets) == 1
    assert p.plan(p.smallest_choice()).format_of("lm_head") == QuantFormat.parse("q4_0")
