"""Text for calibration and evaluation, as fixed windows of token ids.

The package ships WikiText-2 (CC BY-SA 3.0): the validation split is the default
calibration text, the test split the default evaluation text, so the two never
overlap. User files may replace either; the same file for both is refused.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch

from autoquant.errors import UserError

CALIB_DEFAULT = "wikitext2-valid.txt"
EVAL_DEFAULT = "wikitext2-test.txt"


@dataclass(frozen=True)
class TextSource:
    name: str  # file path, or "wikitext-2 validation (embedded)"
    text: str
    embedded: bool = False

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()[:16]

    @property
    def ref(self) -> TextRef:
        """How a result names this text: a file by its absolute path, so it is found again."""
        return TextRef(self.name if self.embedded else str(Path(self.name).resolve()), self.fingerprint)


@dataclass(frozen=True)
class TextRef:
    """The text a result was made with (e.g. a plan's gptq/awq calibration): name and fingerprint."""

    name: str  # an absolute file path, or the embedded split's label
    fingerprint: str


def _embedded(filename: str, label: str) -> TextSource:
    text = resources.files("autoquant.corpus").joinpath(filename).read_text(encoding="utf-8")
    return TextSource(label, text, embedded=True)


def calibration_text(path: str | None = None) -> TextSource:
    if path is None:
        return _embedded(CALIB_DEFAULT, "wikitext-2 validation (embedded)")
    return _read(path, "calib")


def evaluation_text(path: str | None = None, calib: TextSource | None = None) -> TextSource:
    src = _embedded(EVAL_DEFAULT, "wikitext-2 test (embedded)") if path is None else _read(path, "eval")
    if calib is not None and src.fingerprint == calib.fingerprint:
        raise UserError("the evaluation text is the calibration text; pass different files to {calib} and {eval}",
                        params=("calib", "eval"))
    return src


def _read(path: str, param: str) -> TextSource:
    """`param` names the argument the path came in (calib, eval), for the error message."""
    p = Path(path)
    named = "{" + param + "}"
    if not p.is_file():
        raise UserError(f"{named}: text file not found: {path}", params=(param,))
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{named}: {path} is not UTF-8 text", params=(param,)) from None
    if len(text.split()) < 100:
        raise UserError(f"{named}: {path} has too little text (need at least a few hundred words)", params=(param,))
    return TextSource(str(p), text)


def token_windows(tokenizer, source: TextSource, seq_len: int, n_tokens: int) -> torch.Tensor:
    """Non-overlapping windows [n, seq_len] of token ids from the start of the text.

    Only as much text as needed is tokenized (roughly 6 characters a token, with margin).
    """
    n_windows = max(1, n_tokens // seq_len)
    need = n_windows * seq_len
    chars = min(len(source.text), need * 8 + 4096)
    ids = tokenizer(source.text[:chars], return_tensors="pt", add_special_tokens=False).input_ids[0]
    while ids.numel() < need and chars < len(source.text):
        chars = min(len(source.text), chars * 2)
        ids = tokenizer(source.text[:chars], return_tensors="pt", add_special_tokens=False).input_ids[0]
    if ids.numel() < seq_len:
        raise UserError(f"{source.name}: only {ids.numel()} tokens, fewer than one window of {seq_len}")
    n_windows = min(n_windows, ids.numel() // seq_len)
    return ids[: n_windows * seq_len].reshape(n_windows, seq_len)
