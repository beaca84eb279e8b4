"""What export refuses, before it reads a weight: each refusal names the layer and the reason."""

from __future__ import annotations

from torch import nn

from autoquant.engines import Engine
from autoquant.errors import UserError
from autoquant.layers import LinearLayer
from autoquant.plan import Plan

# Runtimes fuse these shards of one block into one matmul (vLLM's QKVParallelLinear and
# MergedColumnParallelLinear), which has one scheme: vLLM refuses shards in different schemes.
FUSED_ROLES = (("q", "k", "v"), ("gate", "up"))


def fused_groups(layers: list[LinearLayer]) -> list[list[LinearLayer]]:
    groups: dict[tuple, list[LinearLayer]] = {}
    for layer in layers:
        for roles in FUSED_ROLES:
            if layer.role in roles and layer.block is not None:
                groups.setdefault((layer.block, roles, layer.name.rsplit(".", 2)[0]), []).append(layer)
    return [g for g in groups.values() if len(g) > 1]


def check_exportable(plan: Plan, layers: list[LinearLayer], engine: Engine, fmt: str, model: nn.Module) -> None:
    """Raise UserError for the first layer `engine` could not load from a `fmt` checkpoint."""
    plan.validate(layers)
    for layer in layers:
        f = plan.format_of(layer)
        ok, why = engine.loads_layer(f, layer)
        if not ok:
            raise UserError(f"cannot export for {engine.name}: layer {layer.name}: {why}")
        if fmt == "compressed-tensors" and not f.is_float and not isinstance(model.get_submodule(layer.name), nn.Linear):
            kind = type(model.get_submodule(layer.name)).__name__
            raise UserError(f"cannot export as compressed-tensors: layer {layer.name} is a {kind}, which "
                            "compressed-tensors does not quantize (keep it fp16, or use --format autoquant)")
    if engine.name == "autoquant":
        return
    for group in fused_groups(layers):
        formats = {plan.format_of(l) for l in group}
        if len(formats) > 1:
            detail = ", ".join(f"{l.name.rsplit('.', 1)[-1]}={plan.format_of(l)}" for l in group)
            raise UserError(f"cannot export for {engine.name}: layer {group[0].name}: the fused shards of one "
                            f"matmul need one scheme, got {detail}")
