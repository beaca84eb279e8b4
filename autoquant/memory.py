"""Peak VRAM of serving a model under a plan.

    total = weights + KV cache + activation workspace + runtime overhead

* weights: every linear layer in its planned format (`QuantFormat.storage_bytes`), the
  embeddings and all other parameters (norms, biases) in 16 bits. A tied lm_head in a
  16-bit format shares the embedding's storage; quantized, it is a separate copy, except in
  a llama.cpp block format: a GGUF file holds one `token_embd` tensor that both the input
  lookup and the output read (as llama.cpp writes tied models), so the head's bytes replace
  the 16-bit embedding's (`shares_embedding`).
* KV cache: batch x context x layers x kv-heads x head-dim x 2 (K and V) x kv bytes.
* activations: the prefill workspace of one block for the whole batch x context (residual,
  normed input, q/k/v/attention output, the MLP's gate and up), 16-bit, plus fp32 logits
  of the last position. Attention scores are not materialized (SDPA / flash attention).
* overhead: CUDA context and allocator slack, a stated constant plus a fraction.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from torch import nn

from autoquant.formats import QuantFormat
from autoquant.layers import LinearLayer, discover_layers
from autoquant.models import ModelSource, build_meta_model, load_config
from autoquant.plan import Plan

RUNTIME_OVERHEAD_FIXED = 512 * 2**20  # CUDA context + cuBLAS/Triton workspaces, measured ~0.4-0.6 GiB
RUNTIME_OVERHEAD_FRACTION = 0.05  # caching-allocator fragmentation on weights + KV cache
DTYPE_BYTES = 2  # serving dtype of activations, embeddings and unquantized tensors


@dataclass(frozen=True)
class ModelShape:
    """What the memory and latency models need to know of an architecture."""

    layers: tuple[LinearLayer, ...]
    num_blocks: int
    hidden_size: int
    intermediate_size: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    embedding_params: int  # input (and untied positional) embeddings
    other_params: int  # norms, biases: everything that is neither linear weight nor embedding

    @property
    def linear_params(self) -> int:
        return sum(l.params for l in self.layers if not l.tied)

    @property
    def total_params(self) -> int:
        return self.linear_params + self.embedding_params + self.other_params

    @classmethod
    def from_model(cls, model: nn.Module) -> ModelShape:
        """Works on the meta device: only shapes are read."""
        cfg = model.config
        layers = discover_layers(model)
        linear_weights = {id(model.get_submodule(l.name).weight) for l in layers}
        emb_ids = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
        embedding = other = 0
        seen: set[int] = set()
        for p in model.parameters():  # parameters() already yields a tied tensor once
            if id(p) in seen:
                continue
            seen.add(id(p))
            if id(p) in emb_ids:
                embedding += p.numel()
            elif id(p) not in linear_weights:
                other += p.numel()
        text_cfg = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
        heads = getattr(text_cfg, "num_attention_heads", None) or text_cfg.n_head
        hidden = getattr(text_cfg, "hidden_size", None) or text_cfg.n_embd
        head_dim = getattr(text_cfg, "head_dim", None) or hidden // heads
        blocks = getattr(text_cfg, "num_hidden_layers", None) or text_cfg.n_layer
        kv_heads = getattr(text_cfg, "num_key_value_heads", None) or heads
        inter = getattr(text_cfg, "intermediate_size", None) or getattr(text_cfg, "n_inner", None) or 4 * hidden
        return cls(tuple(layers), blocks, hidden, inter, kv_heads, head_dim, text_cfg.vocab_size, embedding, other)

    @classmethod
    def from_source(cls, source: ModelSource) -> ModelShape:
        """Shapes from the config alone, on the meta device: no weights are read."""
        return cls.from_model(build_meta_model(load_config(source)))


@dataclass(frozen=True)
class MemoryEstimate:
    linear_bytes: int  # linear-layer weights in their planned formats
    embedding_bytes: int
    other_bytes: int
    kv_cache_bytes: int
    activation_bytes: int
    overhead_bytes: int
    batch: int
    context: int

    @property
    def weights_bytes(self) -> int:
        return self.linear_bytes + self.embedding_bytes + self.other_bytes

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.kv_cache_bytes + self.activation_bytes + self.overhead_bytes

    def to_dict(self) -> dict[str, int]:
        d = asdict(self)
        d["weights_bytes"] = self.weights_bytes
        d["total_bytes"] = self.total_bytes
        return d


def shares_embedding(layer: LinearLayer, fmt: QuantFormat) -> bool:
    """Whether a tied lm_head under `fmt` is the input embedding's own tensor: in 16 bits, or in
    a llama.cpp block format (one GGUF `token_embd` serves the lookup and the output, so the
    lookup reads the quantized rows too). Any other format unties it into a separate copy."""
    return layer.tied and (fmt.is_float or fmt.is_gguf)


def linear_bytes(shape: ModelShape, plan: Plan) -> int:
    """Linear weights under the plan; a tied lm_head left in 16 bits costs nothing extra (the
    embedding's storage), one in a block format is the shared tensor, counted here in its type."""
    total = 0
    for layer in shape.layers:
        fmt = plan.format_of(layer)
        if layer.tied and fmt.is_float:
            continue
        total += fmt.storage_bytes(layer.out_features, layer.in_features)
    return total


def embedding_bytes(shape: ModelShape, plan: Plan) -> int:
    """Embeddings in 16 bits, less a tied lm_head's rows when it holds them in a block format."""
    shared = 0
    for layer in shape.layers:
        fmt = plan.format_of(layer)
        if shares_embedding(layer, fmt) and not fmt.is_float:
            shared += layer.params
    return (shape.embedding_params - shared) * DTYPE_BYTES


def layer_weight_bytes(shape: ModelShape, layer: LinearLayer, fmt: QuantFormat) -> int:
    """What one layer's format adds to the weights: its storage, less the 16-bit embedding rows
    it takes over when it is a tied lm_head in a block format (then possibly negative). The search
    sums these per plan, so a plan's sum differs from `weights_bytes` by a plan-independent constant."""
    plan = Plan({layer.name: fmt})
    one = replace(shape, layers=(layer,))
    return linear_bytes(one, plan) + embedding_bytes(one, plan) - shape.embedding_params * DTYPE_BYTES


def kv_cache_bytes(shape: ModelShape, batch: int, context: int, kv_bytes: int = DTYPE_BYTES) -> int:
    return batch * context * shape.num_blocks * shape.num_kv_heads * shape.head_dim * 2 * kv_bytes


def activation_bytes(shape: ModelShape, batch: int, context: int) -> int:
    tokens = batch * context
    q_width = shape.hidden_size  # q and attention output
    kv_width = 2 * shape.num_kv_heads * shape.head_dim
    per_token = 2 * shape.hidden_size + 2 * q_width + kv_width + 2 * shape.intermediate_size
    return tokens * per_token * DTYPE_BYTES + batch * shape.vocab_size * 4


def estimate_memory(shape: ModelShape, plan: Plan, batch: int = 1, context: int = 4096) -> MemoryEstimate:
    lin = linear_bytes(shape, plan)
    emb = embedding_bytes(shape, plan)
    other = shape.other_params * DTYPE_BYTES
    kv = kv_cache_bytes(shape, batch, context)
    act = activation_bytes(shape, batch, context)
    overhead = RUNTIME_OVERHEAD_FIXED + int(RUNTIME_OVERHEAD_FRACTION * (lin + emb + other + kv))
    return MemoryEstimate(lin, emb, other, kv, act, overhead, batch, context)
