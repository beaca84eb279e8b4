"""Serving engines: where a plan will run, and so which formats a plan may use.

The engine is part of the question a search answers (`--engine` on `search` and `export`): a plan
for vLLM may use only what vLLM's compressed-tensors loader serves, a plan for transformers only
what transformers' loader computes correctly. The search keeps to `engine.loads(fmt)` (a space
restricted by `restrict_space`), the front and the app name the engine, and export refuses a plan
its engine cannot load (`engine.loads_layer(fmt, layer)`, which adds the shape rules).

    vllm          compressed-tensors `pack-quantized` (WNA16: Marlin, Machete, Exllama kernels):
                  int4 symmetric or with zero points, any group size or per channel; int8
                  symmetric only (zero points exist only for 4 bits in those kernels: an int8
                  checkpoint with zero points passes vLLM's config check and fails in the
                  kernel); a grouped layer's input size must be a multiple of its group size
    transformers  compressed-tensors through transformers: symmetric only (it cannot load packed
                  zero points: llm-compressor issue 1618, compressed-tensors issue 458)
    autoquant     autoquant's own checkpoints and Triton kernels: every int and float format
    llamacpp      one GGUF file: llama.cpp's block formats (q8_0, q4_0, ...) and f16/bf16
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from autoquant.errors import UserError
from autoquant.formats import QuantFormat
from autoquant.layers import LinearLayer
from autoquant.space import SearchSpace, load_space

DEFAULT_ENGINE = "vllm"


def _no_shape_rule(fmt: QuantFormat, layer: LinearLayer) -> tuple[bool, str]:
    return True, ""


@dataclass(frozen=True)
class Engine:
    name: str
    description: str
    export_format: str  # what `autoquant export` writes for it by default
    _loads: Callable[[QuantFormat], tuple[bool, str]]
    _shape_rule: Callable[[QuantFormat, LinearLayer], tuple[bool, str]] = _no_shape_rule

    def loads(self, fmt: QuantFormat) -> tuple[bool, str]:
        """(True, "") if this engine serves `fmt`, else (False, why not)."""
        return self._loads(fmt)

    def loads_layer(self, fmt: QuantFormat, layer: LinearLayer) -> tuple[bool, str]:
        """`loads(fmt)` for this one layer, its shape included."""
        ok, why = self._loads(fmt)
        if ok and not fmt.is_float:
            ok, why = self._shape_rule(fmt, layer)
        return ok, why

    def allowed(self, formats: list[QuantFormat] | tuple[QuantFormat, ...]) -> list[QuantFormat]:
        return [f for f in formats if self.loads(f)[0]]


def _compressed_tensors(fmt: QuantFormat) -> tuple[bool, str]:
    if fmt.is_float or fmt.dtype in ("int4", "int8"):
        return True, ""
    return False, f"{fmt} has no compressed-tensors form"


def _vllm(fmt: QuantFormat) -> tuple[bool, str]:
    ok, why = _compressed_tensors(fmt)
    if ok and fmt.dtype == "int8" and not fmt.symmetric:
        return False, (f"{fmt}: vLLM's weight-only kernels take zero points for 4-bit weights only "
                       "(int8 with zero points fails in the kernel); use int8-pc-sym")
    return ok, why


def _whole_groups(fmt: QuantFormat, layer: LinearLayer) -> tuple[bool, str]:
    # vLLM's weight-only kernels and compressed-tensors' own dequantize (which transformers runs)
    # both need whole groups
    if fmt.group_size is not None and layer.in_features % fmt.group_size:
        return False, (f"{fmt}: input size {layer.in_features} is not a multiple of the group size "
                       f"{fmt.group_size}, which vLLM's kernels and compressed-tensors' dequantize require")
    return True, ""


def _transformers(fmt: QuantFormat) -> tuple[bool, str]:
    ok, why = _compressed_tensors(fmt)
    if ok and not fmt.is_float and not fmt.symmetric:
        return False, (f"{fmt} has zero points, which transformers cannot load from compressed-tensors "
                       "(llm-compressor issue 1618); use a -sym format or --engine vllm")
    return ok, why


def _autoquant(fmt: QuantFormat) -> tuple[bool, str]:
    if fmt.is_gguf:
        return False, f"{fmt} is a llama.cpp block format, which autoquant's Triton kernels do not run"
    return True, ""


def _llamacpp(fmt: QuantFormat) -> tuple[bool, str]:
    if fmt.is_float or fmt.is_gguf:
        return True, ""
    return False, f"{fmt} has no GGUF form; llama.cpp loads its block formats (q8_0, q5_1, q4_0, ...) and fp16/bf16"


ENGINES: dict[str, Engine] = {
    e.name: e
    for e in (
        Engine("vllm", "vLLM (compressed-tensors checkpoint)", "compressed-tensors", _vllm, _whole_groups),
        Engine("transformers", "transformers (compressed-tensors checkpoint)", "compressed-tensors", _transformers,
               _whole_groups),
        Engine("autoquant", "autoquant's own checkpoint and Triton kernels", "autoquant", _autoquant),
        Engine("llamacpp", "llama.cpp (one GGUF file)", "gguf", _llamacpp),
    )
}


def get_engine(name: str | Engine) -> Engine:
    if isinstance(name, Engine):
        return name
    try:
        return ENGINES[name.strip().lower()]
    except KeyError:
        raise UserError(f"unknown engine {name!r}; expected one of {', '.join(ENGINES)}") from None


@dataclass(frozen=True)
class EngineSpace(SearchSpace):
    """A search space narrowed to what one engine loads: per role by format, per layer by shape
    (a layer whose input size a group does not divide loses that group size)."""

    engine: Engine | None = None

    def formats_for(self, layer: LinearLayer) -> list[QuantFormat]:
        formats = super().formats_for(layer)
        if self.engine is None:
            return formats
        kept = [f for f in formats if self.engine.loads_layer(f, layer)[0]]
        if not kept:
            _, why = self.engine.loads_layer(formats[0], layer)
            raise UserError(f"search space {self.name!r}: layer {layer.name} has no format that engine "
                            f"{self.engine.name!r} loads ({why})")
        return kept

    def to_dict(self) -> dict:
        return {**super().to_dict(), "engine": None if self.engine is None else self.engine.name}


def restrict_space(space: SearchSpace, engine: Engine) -> SearchSpace:
    """The space less what `engine` does not load; a role (or lm_head) left with no format is a
    UserError naming it. For another engine than the space's default the space is named `<space>+<engine>`,
    so its studies and run directory are its own (the engine is in the study's space signature
    either way). The autoquant engine loads everything: its space is the space itself."""
    if engine.name == "autoquant":
        return space
    roles = {}
    for role, formats in space.role_formats.items():
        kept = tuple(engine.allowed(formats))
        if not kept:
            _, why = engine.loads(formats[0])
            raise UserError(f"search space {space.name!r}: role {role!r} has no format that engine "
                            f"{engine.name!r} loads ({why})")
        roles[role] = kept
    lm_head = tuple(engine.allowed(space.lm_head_formats))
    if not lm_head:
        raise UserError(f"search space {space.name!r}: lm_head has no format that engine {engine.name!r} loads")
    fields = {f: getattr(space, f) for f in space.__dataclass_fields__}
    name = space.name if engine.name == _space_default(space) else f"{space.name}+{engine.name}"
    fields.update(name=name, role_formats=roles, lm_head_formats=lm_head, engine=engine)
    return EngineSpace(**fields)


def default_engine(space: str | None = None, fmt: str | None = None) -> str:
    """The engine when none is named: llama.cpp for a GGUF export or a space whose quantized
    formats are all llama.cpp block formats (the bundled llamacpp space, or a YAML of your own),
    else vLLM. The search request applies it, so the CLI, the schedule and the app agree."""
    if fmt == "gguf":
        return "llamacpp"
    return DEFAULT_ENGINE if space is None else _space_default(load_space(space))


def _space_default(space: SearchSpace) -> str:
    quantized = [f for f in space.all_formats() if not f.is_float]
    return "llamacpp" if quantized and all(f.is_gguf for f in quantized) else DEFAULT_ENGINE
