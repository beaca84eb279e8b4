"""Search spaces: which formats each linear layer may take, and which layers move together.

A space is a small YAML file (bundled ones live in the `search_spaces` package):

    name: default
    description: one line shown in `autoquant search --help` output and reports
    formats:                      # per layer role (see autoquant.layers.ROLES); `default` for the rest
      default: [fp16, int8-pc-sym, int4-g128-asym]
      down: [fp16, int8-pc-sym, int4-g64-asym]
    tie:                          # roles of one block that must share a format
      - [q, k, v]
      - [gate, up]
    quantizers:                   # per role (lm_head included), how codes may be chosen; `default` for the rest
      default: [rtn, gptq, awq]   # absent: rtn only
      lm_head: [rtn]
    lm_head:
      formats: [fp16, int8-pc-sym]
      tied: keep                  # keep: a tied lm_head stays 16-bit | search: let it be quantized
    embeddings: keep              # embeddings are a lookup table: autoquant keeps them 16-bit

Why ties: q/k/v (and gate/up) read the same input, so a runtime fuses them into one matmul
that needs one format; searching them jointly also shrinks the space threefold.
Why `tied: keep`: quantizing a tied lm_head unties it, adding a copy of the vocabulary matrix
(the memory model counts it), so it only pays off for latency; a space must opt in. A llama.cpp
block format is the exception: a GGUF file keeps one `token_embd` for both roles, so the head and
the lookup are quantized together and the f16 embedding is replaced, not copied (the `llamacpp`
space searches it).

Not every format is exportable for every engine (`autoquant.engines`; `--engine` narrows a space to
what its engine loads): with zero points (`-asym`) transformers cannot load them; int8 with zero
points (`int8-*-asym`) vLLM cannot serve, nor a group size that does not divide a layer's input
size. The bundled spaces give every engine a choice for every layer.

`formats_for(layer)` is what the profiler measures and the search chooses from; for a tied
layer it is the intersection over its group's roles, so every member offers the same choices.

Quantizers (`autoquant.quantizers`) cost nothing in memory or latency: a layer's codes are
ordinary codes + scales whichever chose them. So they are not a search dimension of their own:
the profiler measures every (layer, format, quantizer) the space allows (`quantizers_for`), and
the search gives each layer, in the format it chooses, the allowed quantizer of least estimated
KL. Only integer formats have a choice (16-bit and llama.cpp block formats are rtn); awq applies
where its scale folds into the op before the layer (`autoquant.quantizers.AWQ_ROLES` of
Llama-style models) and is skipped elsewhere. Members of a tie group may differ in quantizer.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from autoquant.errors import UserError
from autoquant.formats import FP16, QuantFormat
from autoquant.layers import ROLES, LinearLayer
from autoquant.quantizers import AWQ_ROLES, QUANTIZERS

_TOP_KEYS = ("name", "description", "formats", "quantizers", "tie", "lm_head", "embeddings")
_LM_HEAD_KEYS = ("formats", "tied")
_TIED_RULES = ("keep", "search")
_EMBEDDING_RULES = ("keep",)
_ROLE_KEYS = ("default", *(r for r in ROLES if r != "lm_head"))


@dataclass(frozen=True)
class SearchSpace:
    """Allowed formats per role, tie groups of roles, and the lm_head / embedding rules."""

    name: str
    role_formats: dict[str, tuple[QuantFormat, ...]]  # role or "default" -> allowed formats
    tie_roles: tuple[tuple[str, ...], ...] = ()
    lm_head_formats: tuple[QuantFormat, ...] = (FP16,)
    tied_lm_head: str = "keep"  # "keep" | "search"
    embeddings: str = "keep"
    description: str = ""
    source: str = field(default="", compare=False)  # file it came from, for messages
    role_quantizers: dict[str, tuple[str, ...]] = field(default_factory=dict)  # role, lm_head or "default" -> allowed

    # ---- what a layer may take -------------------------------------------
    def _role_formats(self, role: str) -> tuple[QuantFormat, ...]:
        return self.role_formats.get(role, self.role_formats["default"])

    def _tie_group_of(self, role: str) -> tuple[str, ...]:
        for group in self.tie_roles:
            if role in group:
                return group
        return (role,)

    def formats_for(self, layer: LinearLayer) -> list[QuantFormat]:
        """Allowed formats of one layer, in the order the space lists them."""
        if layer.role == "lm_head":
            if layer.tied and self.tied_lm_head == "keep":
                return [FP16]
            return [f for f in self.lm_head_formats if f.fits(layer.in_features)]
        allowed = self._role_formats(layer.role)
        for other in self._tie_group_of(layer.role):
            theirs = set(self._role_formats(other))
            allowed = tuple(f for f in allowed if f in theirs)
        return [f for f in allowed if f.fits(layer.in_features)]  # GGUF rows are whole blocks

    def quantizers_for(self, layer: LinearLayer, fmt: QuantFormat) -> tuple[str, ...]:
        """Quantizers that may choose `layer`'s codes in `fmt`, rtn first: rtn alone for 16-bit and
        llama.cpp block formats, awq only for the roles its scale folds for."""
        if fmt.is_float or fmt.is_gguf:
            return ("rtn",)
        allowed = self.role_quantizers.get(layer.role, self.role_quantizers.get("default", ("rtn",)))
        return tuple(q for q in QUANTIZERS if q in allowed and (q != "awq" or layer.role in AWQ_ROLES))

    def all_quantizers(self) -> tuple[str, ...]:
        found = {q for qs in self.role_quantizers.values() for q in qs} | {"rtn"}
        return tuple(q for q in QUANTIZERS if q in found)

    def all_formats(self) -> list[QuantFormat]:
        """Union over roles and lm_head, sorted float first then by bits, group, symmetry."""
        found: set[QuantFormat] = set(self.lm_head_formats)
        for formats in self.role_formats.values():
            found.update(formats)
        return sorted(found, key=lambda f: (not f.is_float, -f.bits, f.group_size or 0, not f.symmetric, str(f)))

    def tie_groups(self, layers: list[LinearLayer]) -> list[list[str]]:
        """Layer names that must share a format: tied roles within one block; singletons otherwise.

        Groups come in the order of their first layer, so plans and tables read top to bottom.
        """
        keyed: dict[tuple, list[str]] = {}
        for layer in layers:
            group = self._tie_group_of(layer.role)
            if len(group) > 1 and layer.block is not None:
                key: tuple = ("tie", layer.block, group)
            else:
                key = ("one", layer.name)
            keyed.setdefault(key, []).append(layer.name)
        return list(keyed.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "formats": {r: [str(f) for f in fs] for r, fs in self.role_formats.items()},
            "tie": [list(g) for g in self.tie_roles],
            "lm_head": {"formats": [str(f) for f in self.lm_head_formats], "tied": self.tied_lm_head},
            "embeddings": self.embeddings,
            # only when given: the study signature hashes this dict, so spaces written before
            # quantizers existed keep their studies
            **({"quantizers": {r: list(qs) for r, qs in self.role_quantizers.items()}} if self.role_quantizers else {}),
        }


# ---- loading and validation ---------------------------------------------------
def bundled_spaces() -> dict[str, Path]:
    """Name -> path of the spaces shipped in the `search_spaces` package."""
    root = importlib.resources.files("search_spaces")
    return {p.name[: -len(".yaml")]: Path(str(p)) for p in root.iterdir() if p.name.endswith(".yaml")}


def _resolve_path(path: str | None) -> Path:
    """None -> the bundled default; a bare bundled name (`aggressive`) -> that file."""
    bundled = bundled_spaces()
    if path is None:
        return bundled["default"]
    if path in bundled and not Path(path).exists():
        return bundled[path]
    p = Path(path)
    if not p.exists():
        raise UserError(f"search space file not found: {path} (bundled spaces: {', '.join(sorted(bundled))})")
    return p


def _fail(source: str, key: str, problem: str) -> UserError:
    return UserError(f"search space {source}: {key}: {problem}")


def _check_keys(source: str, where: str, data: dict, accepted: Iterable[str]) -> None:
    accepted = tuple(accepted)
    for key in data:
        if key not in accepted:
            raise _fail(source, f"{where}{key}", f"unknown key; accepted: {', '.join(accepted)}")


def _parse_formats(source: str, key: str, value: Any) -> tuple[QuantFormat, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise _fail(source, key, "expected a non-empty list of formats, e.g. [fp16, int8-pc-sym, int4-g128-asym]")
    out: list[QuantFormat] = []
    for item in value:
        try:
            fmt = QuantFormat.parse(str(item))
        except ValueError as e:
            raise _fail(source, key, str(e)) from None
        if fmt not in out:
            out.append(fmt)
    return tuple(out)


def _parse_quantizers(source: str, data: Any) -> dict[str, tuple[str, ...]]:
    if data is None:
        return {}
    if not isinstance(data, dict) or "default" not in data:
        raise _fail(source, "quantizers", "expected a mapping of role -> list of quantizers, with a `default` "
                                          "entry, e.g. {default: [rtn, gptq, awq], lm_head: [rtn]}")
    _check_keys(source, "quantizers.", data, (*_ROLE_KEYS, "lm_head"))
    out = {}
    for role, value in data.items():
        value = [value] if isinstance(value, str) else value
        if not isinstance(value, list) or not value:
            raise _fail(source, f"quantizers.{role}", f"expected a non-empty list of quantizers ({', '.join(QUANTIZERS)})")
        unknown = [q for q in value if q not in QUANTIZERS]
        if unknown:
            raise _fail(source, f"quantizers.{role}", f"unknown quantizer {unknown[0]!r}; accepted: {', '.join(QUANTIZERS)}")
        out[str(role)] = tuple(q for q in QUANTIZERS if q in value)
    return out


def parse_space(data: Any, source: str = "<dict>") -> SearchSpace:
    """Validate a loaded YAML document; every problem is a UserError naming file and key."""
    if not isinstance(data, dict):
        raise UserError(f"search space {source}: expected a mapping with keys {', '.join(_TOP_KEYS)}")
    _check_keys(source, "", data, _TOP_KEYS)
    name = data.get("name") or Path(source).stem
    if not isinstance(name, str):
        raise _fail(source, "name", "expected a string")

    formats = data.get("formats")
    if isinstance(formats, dict):
        _check_keys(source, "formats.", formats, _ROLE_KEYS)
    if not isinstance(formats, dict) or "default" not in formats:
        raise _fail(source, "formats", "expected a mapping of role -> list of formats, with a `default` entry")
    role_formats = {str(r): _parse_formats(source, f"formats.{r}", v) for r, v in formats.items()}

    tie_raw = data.get("tie", []) or []
    if not isinstance(tie_raw, list) or not all(isinstance(g, list) for g in tie_raw):
        raise _fail(source, "tie", "expected a list of role lists, e.g. [[q, k, v], [gate, up]]")
    seen: set[str] = set()
    tie_roles = []
    for i, group in enumerate(tie_raw):
        for role in group:
            if role not in _ROLE_KEYS or role == "default":
                raise _fail(source, f"tie[{i}]", f"unknown role {role!r}; accepted: {', '.join(_ROLE_KEYS[1:])}")
            if role in seen:
                raise _fail(source, f"tie[{i}]", f"role {role!r} is in two tie groups")
            seen.add(role)
        common = set(role_formats.get(group[0], role_formats["default"])) if group else set()
        for role in group[1:]:
            common &= set(role_formats.get(role, role_formats["default"]))
        if not common:
            raise _fail(source, f"tie[{i}]", f"roles {group} share no allowed format")
        tie_roles.append(tuple(str(r) for r in group))

    lm = data.get("lm_head", {}) or {}
    if not isinstance(lm, dict):
        raise _fail(source, "lm_head", "expected a mapping with keys formats, tied")
    _check_keys(source, "lm_head.", lm, _LM_HEAD_KEYS)
    lm_formats = _parse_formats(source, "lm_head.formats", lm.get("formats", ["fp16"]))
    tied = lm.get("tied", "keep")
    if tied not in _TIED_RULES:
        raise _fail(source, "lm_head.tied", f"got {tied!r}; accepted: {', '.join(_TIED_RULES)}")

    emb = data.get("embeddings", "keep")
    if emb not in _EMBEDDING_RULES:
        raise _fail(
            source, "embeddings",
            f"got {emb!r}; accepted: keep (embeddings are a lookup table and stay 16-bit in every plan)",
        )
    description = data.get("description", "") or ""
    quantizers = _parse_quantizers(source, data.get("quantizers"))
    return SearchSpace(
        name, role_formats, tuple(tie_roles), lm_formats, tied, emb, str(description).strip(), source, quantizers
    )


def restrict_quantizers(space: SearchSpace, quantizers: Iterable[str] | None) -> SearchSpace:
    """The space with only `quantizers` (`autoquant search --quantizers rtn`), named
    `<space>+<quantizers>` so its studies are its own; None: the space as it is."""
    if quantizers is None:
        return space
    wanted = tuple(quantizers)
    unknown = [q for q in wanted if q not in QUANTIZERS]
    if unknown or not wanted:
        raise UserError(f"{{quantizers}}: unknown quantizer {unknown[0] if unknown else ''!r}; accepted: "
                        f"{', '.join(QUANTIZERS)} (comma-separated)", params=("quantizers",))
    roles = {}
    for role, allowed in (space.role_quantizers or {"default": ("rtn",)}).items():
        kept = tuple(q for q in allowed if q in wanted)
        if not kept:
            raise UserError(f"{{quantizers}}: search space {space.name!r} allows {role} only {', '.join(allowed)}",
                            params=("quantizers",))
        roles[role] = kept
    if roles == space.role_quantizers:
        return space
    fields = {f: getattr(space, f) for f in space.__dataclass_fields__}
    fields.update(name=f"{space.name}+{'+'.join(q for q in QUANTIZERS if q in wanted)}", role_quantizers=roles)
    return type(space)(**fields)


def load_space(path: str | None) -> SearchSpace:
    """A space from a YAML file, a bundled name (`default`, `aggressive`), or None for the default."""
    p = _resolve_path(path)
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise UserError(f"search space {p}: not valid YAML: {str(e).splitlines()[0]}") from None
    except OSError as e:
        raise UserError(f"search space {p}: cannot read: {e.strerror}") from None
    return parse_space(data, str(p))
