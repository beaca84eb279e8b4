"""Export without the float model in memory: read the source one tensor at a time, write shards.

`SourceTensors` opens the source's safetensors files lazily (`safe_open` maps them; a tensor is
read when asked for), so export holds one float weight at a time. `ShardWriter` collects output
tensors until the next would pass `max_shard_size`, writes that shard and frees it, then names
the shards `model-0000i-of-0000n.safetensors` with the index transformers and vLLM read (one
shard is plain `model.safetensors`, no index). Peak memory is about one shard plus one layer.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from autoquant.errors import UserError
from autoquant.models import ModelSource, weights_directory

INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"


def source_directory(source: ModelSource) -> Path:
    """A local directory holding the source's safetensors weights (GGUF: its converted cache)."""
    if source.kind == "hub":
        from huggingface_hub import snapshot_download

        try:
            return Path(snapshot_download(source.path, allow_patterns=["*.safetensors", "*.json"]))
        except Exception as e:  # offline, unknown id, gated: the hub's own message says which
            raise UserError(f"cannot fetch the weights of {source.display}: {str(e).splitlines()[0]}") from None
    return weights_directory(source)


class SourceTensors:
    """Name -> tensor of a safetensors checkpoint, read on demand.

    Each read opens its file and closes it again: a file mapped for the whole export would keep
    every page it touched resident, and the process would grow to the size of the model.
    """

    def __init__(self, directory: Path) -> None:
        from safetensors import safe_open

        files = sorted(directory.glob("*.safetensors"))
        if not files:
            raise UserError(f"{directory} has no .safetensors weights: export streams safetensors only "
                            "(convert .bin weights with transformers' save_pretrained first)")
        self._where: dict[str, Path] = {}
        self._shape: dict[str, tuple[int, ...]] = {}
        for f in files:
            with safe_open(str(f), framework="pt") as h:
                for k in h.keys():
                    self._where[k] = f
                    self._shape[k] = tuple(h.get_slice(k).get_shape())

    def __contains__(self, name: str) -> bool:
        return name in self._where

    def keys(self) -> list[str]:
        return list(self._where)

    def shape(self, name: str) -> tuple[int, ...]:
        return self._shape[name]

    def get(self, name: str) -> torch.Tensor:
        from safetensors import safe_open

        with safe_open(str(self._where[name]), framework="pt") as h:
            return h.get_tensor(name)

    def rows(self, name: str, start: int, stop: int) -> torch.Tensor:
        """Rows [start, stop) of a 2-D tensor, reading only those."""
        from safetensors import safe_open

        with safe_open(str(self._where[name]), framework="pt") as h:
            return h.get_slice(name)[start:stop]


def parse_shard_size(text: str | int) -> int:
    from autoquant.costs import parse_size

    return text if isinstance(text, int) else parse_size(text, "--max-shard-size")


class ShardWriter:
    """Collects named tensors into safetensors shards of at most `max_bytes` (a larger tensor
    gets a shard of its own) and writes each shard as soon as it is full."""

    def __init__(self, out_dir: Path, max_bytes: int) -> None:
        self.out_dir, self.max_bytes = out_dir, max_bytes
        self._pending: dict[str, torch.Tensor] = {}
        self._pending_bytes = 0
        self._shards: list[tuple[Path, list[str]]] = []
        self.total_bytes = 0

    def add(self, name: str, tensor: torch.Tensor) -> None:
        size = tensor.numel() * tensor.element_size()
        if self._pending and self._pending_bytes + size > self.max_bytes:
            self._flush()
        self._pending[name] = tensor.contiguous()
        self._pending_bytes += size
        self.total_bytes += size

    def _flush(self) -> None:
        from safetensors.torch import save_file

        path = self.out_dir / f".shard-{len(self._shards):05d}.safetensors"
        save_file(self._pending, str(path), metadata={"format": "pt"})
        self._shards.append((path, list(self._pending)))
        self._pending, self._pending_bytes = {}, 0

    def close(self) -> list[Path]:
        """Write the last shard, give the shards their final names, write the index."""
        if self._pending or not self._shards:
            self._flush()
        n = len(self._shards)
        if n == 1:
            final = self.out_dir / SINGLE_FILE
            os.replace(self._shards[0][0], final)
            return [final]
        weight_map, paths = {}, []
        for i, (tmp, names) in enumerate(self._shards):
            final = self.out_dir / f"model-{i + 1:05d}-of-{n:05d}.safetensors"
            os.replace(tmp, final)
            paths.append(final)
            weight_map.update({name: final.name for name in names})
        index = {"metadata": {"total_size": self.total_bytes}, "weight_map": dict(sorted(weight_map.items()))}
        (self.out_dir / INDEX_FILE).write_text(json.dumps(index, indent=2) + "\n")
        return paths


def read_checkpoint(directory: Path) -> SourceTensors:
    """The tensors of an exported checkpoint (one file or shards), read on demand."""
    return SourceTensors(directory)


class ModelTensors:
    """The `SourceTensors` interface over a model already in memory: what a calibrated plan (gptq,
    awq) exports from, since calibration needs the whole model loaded (and awq changes norms)."""

    def __init__(self, state: dict[str, torch.Tensor]) -> None:
        self._state = state

    def __contains__(self, name: str) -> bool:
        return name in self._state

    def keys(self) -> list[str]:
        return list(self._state)

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self._state[name].shape)

    def get(self, name: str) -> torch.Tensor:
        return self._state[name]

    def rows(self, name: str, start: int, stop: int) -> torch.Tensor:
        return self._state[name][start:stop]
