"""The `autoquant::wo_matmul` custom op and the path selector.

torch.compile must see a model of QuantLinear layers as one graph (the op has a fake
implementation), and the selector must name the path a problem takes and why the others do not.
"""

from __future__ import annotations

import dataclasses

import kernel_env  # noqa: F401  (interpreter setup before `kernels` is imported)
import pytest
import torch
from torch import nn

from autoquant.kernels import MatmulProblem, QuantLinear, StreamConfig, selector
from autoquant.kernels.ops import wo_matmul_op

_gen = torch.Generator().manual_seed(7)


def _model() -> nn.Module:
    def lin(i: int, o: int, bias: bool) -> nn.Linear:
        layer = nn.Linear(i, o, bias=bias)
        with torch.no_grad():
            layer.weight.copy_(torch.randn(o, i, generator=_gen) * 0.05)
            if bias:
                layer.bias.copy_(torch.randn(o, generator=_gen))
        return layer

    return nn.Sequential(
        QuantLinear.from_linear(lin(64, 96, True), "int4-g32-asym"), nn.ReLU(),
        QuantLinear.from_linear(lin(96, 48, False), "int8-pc-sym"), nn.GELU(),
        QuantLinear.from_linear(lin(48, 32, True), "int4-pc-sym"),
    ).eval()


def test_dynamo_sees_no_graph_break() -> None:
    torch._dynamo.reset()
    x = torch.randn(2, 5, 64, generator=_gen)
    explained = torch._dynamo.explain(_model())(x)
    assert explained.graph_break_count == 0, explained.break_reasons
    assert explained.graph_count == 1


def test_fullgraph_compile_equals_eager() -> None:
    torch._dynamo.reset()
    model = _model()
    x = torch.randn(3, 64, generator=_gen)
    eager = model(x)
    # aot_eager traces the op through its fake implementation, then runs the real kernels
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    assert torch.equal(compiled(x), eager)
    assert torch.equal(compiled(x[:1]), model(x[:1]))


def test_op_schema_fake_and_dispatch() -> None:
    layer = _model()[0]
    x = torch.randn(4, 64, generator=_gen)
    args = (x, layer.codes, layer.scales, layer.zeros, layer.bias, layer.format_name, 96, 64, torch.float16)
    torch.library.opcheck(wo_matmul_op, args)
    assert torch.equal(wo_matmul_op(*args), layer(x))


def _problem(**kw) -> MatmulProblem:
    base = dict(m=1, n=4096, k=4096, bits=4, group=128, symmetric=False, dtype=torch.float16, device_type="cuda",
                capability=9, interpreting=False, tuned=True, words_aligned=True, tma_aligned=True)
    return MatmulProblem(**{**base, **kw})


@pytest.mark.parametrize("kw,path", [
    (dict(m=1), "decode stream"),
    (dict(m=2), "decode stream"),
    (dict(m=2, bits=8, group=4096), "small-M tl.dot"),
    (dict(m=16), "small-M tl.dot"),
    (dict(m=1, words_aligned=False), "decode bytes"),
    (dict(m=100), "prefill tl.dot"),
    (dict(m=1024, n=14336), "fused wgmma"),
    (dict(m=1024, n=14336, dtype=torch.bfloat16), "dequantize + cuBLAS"),
    (dict(m=1024, n=14336, capability=8), "dequantize + cuBLAS"),
    (dict(m=512, n=1024), "dequantize + cuBLAS"),  # too few tiles for the fused kernel
    (dict(m=1, device_type="cpu", capability=0), "reference"),
    (dict(m=1, device_type="cpu", capability=0, interpreting=True, tuned=False), "decode stream"),
])
def test_selector_picks_a_path_and_says_why_not_the_others(kw: dict, path: str) -> None:
    problem = _problem(**kw)
    assert selector.choose(problem).NAME == path
    why = selector.explain(problem)
    assert set(why) == {p.NAME for p in selector.PATHS}
    assert why[path] == "" and all(why[name] for name in why if name != path)


def test_selector_reasons_name_the_rule() -> None:
    why = selector.explain(_problem(m=1, device_type="cpu", capability=0))
    assert "CUDA device" in why["decode stream"] and "CUDA device" in why["fused wgmma"]
    why = selector.explain(_problem(m=1024, n=14336, dtype=torch.bfloat16))
    assert "fp16 x and int4" in why["fused wgmma"]
    assert "comes first" in why["prefill tl.dot"]  # it could, but the GEMM path is preferred
    # an explicit config names its path; the others are turned down for its type
    problem = dataclasses.replace(_problem(m=1), tuned=False)
    config = StreamConfig(block_n=16, block_k=64)
    assert selector.choose(problem, config).NAME == "decode stream"
    assert selector.explain(problem, config)["decode bytes"] == "the config is a StreamConfig"
    with pytest.raises(ValueError, match="does not fit scale groups of 32"):
        selector.choose(dataclasses.replace(problem, group=32), StreamConfig(block_n=16, block_k=128))


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_layers_on_another_gpu_launch_there() -> None:
    layer = _model()[0].to("cuda:1")
    x = torch.randn(3, 64, generator=_gen).half()
    with torch.cuda.device(0):
        y = layer(x.to("cuda:1"))
    assert y.device == torch.device("cuda:1")
    want = layer.to("cpu")(x.float())  # the reference path on the same weight
    assert torch.allclose(y.float().cpu(), want, rtol=2e-2, atol=2e-2)
