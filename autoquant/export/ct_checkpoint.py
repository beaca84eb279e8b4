"""Write a plan as a compressed-tensors checkpoint, streaming; load one into QuantLinear.

Writing never builds the float model: the architecture comes from the config on the meta device
(names, shapes, module types), each weight is read from the source's safetensors when its turn
comes, quantized with `autoquant.quant` (the same scales and zero points the search measured),
encoded by `ct_format` and handed to the shard writer.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from torch import nn

from autoquant.errors import UserError
from autoquant.export import ct_format
from autoquant.export.streaming import ModelTensors, ShardWriter, SourceTensors
from autoquant.formats import QuantFormat
from autoquant.layers import discover_layers, linear_weight
from autoquant.plan import Plan
from autoquant.quant import QuantizedWeight


def _embedding_key(model: nn.Module) -> str | None:
    emb = model.get_input_embeddings()
    for name, module in model.named_modules():
        if module is emb:
            return f"{name}.weight"
    return None


def _source_name(source: SourceTensors, key: str, prefix: str, fallback: str | None) -> str:
    """The name a tensor of the model has in the source checkpoint."""
    for candidate in (key, key.removeprefix(f"{prefix}."), fallback):
        if candidate and candidate in source:
            return candidate
    raise UserError(f"the source checkpoint has no tensor {key}")


def _read(source: SourceTensors, key: str, prefix: str, fallback: str | None) -> torch.Tensor:
    return source.get(_source_name(source, key, prefix, fallback))


def write_ct_checkpoint(source: SourceTensors | ModelTensors, meta_model: nn.Module, plan: Plan, out: Path,
                        dtype: torch.dtype, max_shard_bytes: int,
                        on_tensor: Callable[[], None] = lambda: None,
                        quantized: Mapping[str, QuantizedWeight] | None = None) -> list[Path]:
    """Every tensor of the model, quantized layers as compressed-tensors, into shards under `out`.

    `quantized`: layers whose codes were already chosen (gptq, awq), written as they are.
    """
    quantized = quantized or {}
    layers = {l.name: l for l in discover_layers(meta_model)}
    formats = plan.formats
    tied = bool(getattr(meta_model.config, "tie_word_embeddings", False))
    lm_head = next((n for n, l in layers.items() if l.tied), None)
    untie = lm_head is not None and not formats[lm_head].is_float
    emb_key = _embedding_key(meta_model)
    prefix = getattr(meta_model, "base_model_prefix", "")
    writer = ShardWriter(out, max_shard_bytes)
    for key in meta_model.state_dict():
        module_name, _, leaf = key.rpartition(".")
        if tied and not untie and module_name == lm_head:
            continue  # shares the embedding's tensor, as save_pretrained writes it
        fmt: QuantFormat | None = formats.get(module_name)
        fallback = emb_key if module_name == lm_head else None
        if module_name in quantized and leaf == "weight":
            for suffix, tensor in ct_format.encode(quantized[module_name]).items():
                writer.add(f"{module_name}.{suffix}", tensor)
        elif fmt is not None and not fmt.is_float and leaf == "weight":
            name = _source_name(source, key, prefix, fallback)
            tensors = ct_format.encode_rows(lambda a, b: source.rows(name, a, b), source.shape(name)[0], fmt)
            for suffix, tensor in tensors.items():
                writer.add(f"{module_name}.{suffix}", tensor)
        else:
            t = _read(source, key, prefix, fallback)
            writer.add(key, t.to(dtype) if t.is_floating_point() else t)
        on_tensor()
    if untie:
        meta_model.config.tie_word_embeddings = False
    return writer.close()


def write_ct_config(meta_model: nn.Module, plan: Plan, out: Path, dtype: torch.dtype) -> None:
    """config.json as transformers writes it, plus compressed-tensors' quantization_config
    (written by compressed-tensors' own ModelCompressor) when any layer is quantized."""
    from compressed_tensors.compressors import ModelCompressor

    config = meta_model.config
    config.dtype = dtype
    config.save_pretrained(out)
    if all(f.is_float for f in plan.formats.values()):
        return  # nothing quantized: a plain 16-bit checkpoint every engine loads as is
    ModelCompressor(quantization_config=ct_format.quantization_config(plan.formats)).update_config(str(out))


def read_quantization_config(path: Path):
    """The checkpoint's quantization_config as compressed-tensors' QuantizationConfig, or None."""
    from compressed_tensors.quantization import QuantizationConfig

    cfg = json.loads((path / "config.json").read_text()).get("quantization_config")
    if not cfg or cfg.get("quant_method") != "compressed-tensors":
        return None
    return QuantizationConfig.model_validate({k: v for k, v in cfg.items() if k in QuantizationConfig.model_fields})


def layer_formats(qconfig, model: nn.Module) -> dict[str, QuantFormat]:
    """Linear layer name -> format under `qconfig`, matched as compressed-tensors matches targets."""
    from compressed_tensors.utils import is_match

    out: dict[str, QuantFormat] = {}
    ignore = list(qconfig.ignore or [])
    for layer in discover_layers(model):
        module = model.get_submodule(layer.name)
        if any(is_match(layer.name, module, t) for t in ignore):
            continue
        for scheme in qconfig.config_groups.values():
            if scheme.weights is not None and any(is_match(layer.name, module, t) for t in scheme.targets):
                try:
                    out[layer.name] = ct_format.format_of_args(scheme.weights)
                except ValueError as e:
                    raise UserError(f"layer {layer.name}: {e}") from None
                break
    return out


def load_ct_checkpoint(path: Path, qconfig, device: str | torch.device) -> nn.Module:
    """A compressed-tensors checkpoint as a model with QuantLinear layers (codes repacked once,
    at load, into the layout the Triton kernels read)."""
    from accelerate import init_empty_weights
    from accelerate.utils import set_module_tensor_to_device
    from transformers import AutoConfig, AutoModelForCausalLM

    from autoquant.export.native import finish_loading
    from autoquant.kernels import QuantLinear
    from autoquant.layers import set_module

    config = AutoConfig.from_pretrained(path)
    del config.quantization_config  # built here, not by transformers' quantizer
    dtype = config.dtype if isinstance(config.dtype, torch.dtype) else torch.float16
    with init_empty_weights(include_buffers=False):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    formats = layer_formats(qconfig, model)
    tensors = SourceTensors(path)
    for name, fmt in formats.items():
        old = model.get_submodule(name)
        parts = {s: tensors.get(f"{name}.{s}") for s in ("weight_packed", "weight_scale", "weight_shape",
                                                         "weight_zero_point") if f"{name}.{s}" in tensors}
        bias = tensors.get(f"{name}.bias") if old.bias is not None else None
        qw = ct_format.decode(fmt, parts)
        if qw.shape != tuple(linear_weight(old).shape):
            raise UserError(f"checkpoint {path}: layer {name} has shape {qw.shape}, the model {tuple(linear_weight(old).shape)}")
        set_module(model, name, QuantLinear.from_quantized(qw.to(device), bias, dtype=dtype))
    quantized = tuple(f"{n}." for n in formats)
    for key in tensors.keys():
        if not key.startswith(quantized):
            t = tensors.get(key)
            set_module_tensor_to_device(model, key, device, value=t.to(dtype) if t.is_floating_point() else t)
    return finish_loading(model, config, path, device)
