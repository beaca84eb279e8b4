"""Discovery of the quantizable linear layers of a causal LM.

Works on a real model or a meta-device one (shapes only), for Llama-, Qwen2-,
Mistral- (separate q/k/v/o, gate/up/down) and GPT-2-style (fused `c_attn`,
`transformers.pytorch_utils.Conv1D` with its [in, out] weight) architectures.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import nn

ROLES = ("q", "k", "v", "qkv", "o", "gate", "up", "gate_up", "down", "lm_head", "other")

# Last name component -> role; the parent decides for GPT-2's ambiguous c_proj.
_SUFFIX_ROLES = {
    "q_proj": "q", "k_proj": "k", "v_proj": "v", "o_proj": "o", "out_proj": "o", "dense": "o",
    "query": "q", "key": "k", "value": "v", "qkv_proj": "qkv", "query_key_value": "qkv",
    "c_attn": "qkv", "Wqkv": "qkv", "wq": "q", "wk": "k", "wv": "v", "wo": "o",
    "gate_proj": "gate", "up_proj": "up", "down_proj": "down", "gate_up_proj": "gate_up",
    "w1": "gate", "w3": "up", "w2": "down", "c_fc": "up", "fc1": "up", "fc2": "down",
    "dense_h_to_4h": "up", "dense_4h_to_h": "down", "lm_head": "lm_head",
}
_BLOCK = re.compile(r"\.(?:layers|h|blocks|layer)\.(\d+)\.")


@dataclass(frozen=True)
class LinearLayer:
    """One quantizable linear layer: its weight is [out_features, in_features]."""

    name: str
    out_features: int
    in_features: int
    role: str
    block: int | None
    bias: bool = False
    tied: bool = False  # weight shared with the input embedding (lm_head of tied models)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.out_features, self.in_features)

    @property
    def params(self) -> int:
        return self.out_features * self.in_features


def is_linear(module: nn.Module) -> bool:
    """nn.Linear, or GPT-2's Conv1D (a linear layer storing its weight transposed)."""
    return isinstance(module, nn.Linear) or type(module).__name__ == "Conv1D"


def linear_weight(module: nn.Module) -> torch.Tensor:
    """The weight as [out, in] whatever the module type (a view for Conv1D)."""
    return module.weight.t() if type(module).__name__ == "Conv1D" else module.weight


def layer_role(name: str) -> str:
    last = name.rsplit(".", 1)[-1]
    if last == "c_proj":  # GPT-2: attn.c_proj is the output projection, mlp.c_proj the down one
        return "down" if ".mlp." in f".{name}" else "o"
    return _SUFFIX_ROLES.get(last, "other")


def layer_block(name: str) -> int | None:
    m = _BLOCK.search(f".{name}.")
    return int(m.group(1)) if m else None


def discover_layers(model: nn.Module) -> list[LinearLayer]:
    """Every linear layer of the model, in module order, with role and block index."""
    emb = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    emb_weight = getattr(emb, "weight", None)
    tied_config = bool(getattr(getattr(model, "config", None), "tie_word_embeddings", False))
    layers = []
    for name, module in model.named_modules():
        if not is_linear(module):
            continue
        w = linear_weight(module)
        out_f, in_f = w.shape
        role = layer_role(name)
        tied = role == "lm_head" and (
            (emb_weight is not None and module.weight is emb_weight) or tied_config
        )
        layers.append(
            LinearLayer(name, out_f, in_f, role, layer_block(name), module.bias is not None, tied)
        )
    return layers


def set_linear_weight(module: nn.Module, w_nk: torch.Tensor) -> None:
    """Write a [N, K] weight back in the module's own orientation."""
    data = w_nk.t() if type(module).__name__ == "Conv1D" else w_nk
    module.weight.data.copy_(data)


def untie_weight(model: nn.Module, name: str) -> None:
    """Give layer `name` its own copy of a weight it shares with the input embedding (a tied
    lm_head), so that quantizing it leaves the embedding intact."""
    module = model.get_submodule(name)
    emb = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    if emb is not None and module.weight is getattr(emb, "weight", None):
        module.weight = nn.Parameter(module.weight.detach().clone(), requires_grad=False)
        if hasattr(model.config, "tie_word_embeddings"):
            model.config.tie_word_embeddings = False


def get_module(model: nn.Module, name: str) -> nn.Module:
    return model.get_submodule(name)


def set_module(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, new)
