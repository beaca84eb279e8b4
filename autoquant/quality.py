"""The one quality meter: perplexity and KL of a (partly) quantized model against itself unquantized.

Profile (one layer at a time), search (the front's plans) and `autoquant evaluate` (plans a
user names) all measure through `QualityMeter`, with the same defaults (`default_device`,
`DEFAULT_EVAL_TOKENS`, `SEQ_LEN`), so they report the same numbers for the same plan and text.

Perplexity on the text, and the KL divergence KL(p_ref || p_model) of the next-token
distribution, averaged over tokens (nats). The reference log-probabilities are computed once
per meter and kept in fp16 (the vocabulary is large; fp16 keeps the KL noise floor near 1e-5
nats), so each measurement is one forward pass. A plan is applied fake-quantized for the
duration of one measurement and the original weights put back (`temporarily_quantized`): no
reload between plans. Layers a plan leaves in a 16-bit format are left as loaded: the reference
is the loaded model, so uniform fp16 measures as the reference itself (KL 0).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from autoquant.apply import temporarily_quantized, temporarily_replaced
from autoquant.data import TextSource, token_windows
from autoquant.formats import QuantFormat
from autoquant.models import ModelSource, load_model, load_tokenizer
from autoquant.plan import Plan

DEFAULT_EVAL_TOKENS = 4096  # ~11 s a measurement for SmolLM2 on a CPU; search measures ~9 plans
SEQ_LEN = 512
BATCH_SIZE = 4


def default_device() -> str:
    """Where plans are measured unless the caller says otherwise: the GPU when there is one."""
    return "cuda" if torch.cuda.is_available() else "cpu"


@dataclass(frozen=True)
class Measurement:
    """Quality of one model variant on fixed text, against the unquantized model."""

    perplexity: float
    kl: float  # mean KL(reference || variant), nats/token
    ppl_change: float  # relative to the reference perplexity, 0.03 = +3%
    tokens: int  # tokens scored (windows x (window length - 1))
    reference_perplexity: float  # of the unquantized model on the same windows
    text: str = ""  # what the windows were cut from (a file, or the embedded text's label)
    text_fingerprint: str = ""
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Measurement:
        """Reads what `to_dict` wrote. Older records hold one of the two perplexities (search's the
        plan's, profile's the reference's): the other follows from `ppl_change`."""
        known = {f.name: d[f.name] for f in fields(cls) if f.name in d}
        if "reference_perplexity" not in known:
            known["reference_perplexity"] = d["perplexity"] / (1.0 + d["ppl_change"])
        if "perplexity" not in known:
            known["perplexity"] = d["reference_perplexity"] * (1.0 + d["ppl_change"])
        return cls(**known)


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.inference_mode()
def _logprobs(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    logits = model(ids.to(_device(model)), use_cache=False).logits[:, :-1]
    return F.log_softmax(logits.float(), dim=-1)


@torch.inference_mode()
def perplexity(model: nn.Module, windows: torch.Tensor, batch_size: int = BATCH_SIZE) -> float:
    """Perplexity of any causal LM on windows [n, seq] of token ids, by the meter's arithmetic:
    for models loaded without autoquant (an exported checkpoint in transformers, say)."""
    nll = 0.0
    for batch in windows.split(batch_size):
        lp = _logprobs(model, batch)
        nll += -lp.gather(-1, batch[:, 1:].to(lp.device).unsqueeze(-1)).sum().item()
    return math.exp(nll / (windows.shape[0] * (windows.shape[1] - 1)))


def llama_cpp_perplexity(gguf_path: str, windows: torch.Tensor, threads: int = 2) -> float:
    """Perplexity of a GGUF file run by llama.cpp itself (llama-cpp-python), by the same
    arithmetic on the same windows: what a llama.cpp user gets from an exported file."""
    import llama_cpp

    seq = windows.shape[1]
    llm = llama_cpp.Llama(model_path=str(gguf_path), n_ctx=seq, logits_all=True, n_threads=threads, verbose=False)
    nll = 0.0
    for w in windows:
        llm.reset()
        llm.eval(w.tolist())
        logits = torch.tensor(llm.scores[: seq - 1], dtype=torch.float32)
        nll += F.cross_entropy(logits, w[1:], reduction="sum").item()
    llm.close()
    return math.exp(nll / (windows.shape[0] * (seq - 1)))


class QualityMeter:
    """Measures variants of one loaded model on fixed windows [n, seq] of token ids."""

    def __init__(self, model: nn.Module, windows: torch.Tensor, text: TextSource | None = None,
                 batch_size: int = BATCH_SIZE, calibration: torch.Tensor | None = None) -> None:
        self.model = model
        self.windows = windows
        self.calibration = calibration  # windows of calibration text, for plans with gptq/awq layers
        self.batch_size = batch_size
        self.text_name = "" if text is None else text.name
        self.text_fingerprint = "" if text is None else text.fingerprint
        t = time.perf_counter()
        self._ref: list[torch.Tensor] = [
            _logprobs(model, b).to(torch.float16).cpu() for b in windows.split(batch_size)
        ]
        nll = sum(
            -ref.float().gather(-1, b[:, 1:].unsqueeze(-1)).sum().item()
            for b, ref in zip(windows.split(batch_size), self._ref)
        )
        ppl = math.exp(nll / self.tokens)
        self.reference = self._result(ppl, 0.0, ppl, time.perf_counter() - t)

    @property
    def tokens(self) -> int:
        return self.windows.shape[0] * (self.windows.shape[1] - 1)

    @property
    def reference_perplexity(self) -> float:
        return self.reference.perplexity

    def _result(self, ppl: float, kl: float, ref_ppl: float, seconds: float) -> Measurement:
        return Measurement(ppl, kl, ppl / ref_ppl - 1.0, self.tokens, ref_ppl, self.text_name,
                           self.text_fingerprint, seconds)

    @torch.inference_mode()
    def _score(self) -> tuple[float, float]:
        nll = kl = 0.0
        for batch, ref in zip(self.windows.split(self.batch_size), self._ref):
            lp = _logprobs(self.model, batch)
            targets = batch[:, 1:].to(lp.device)
            nll += -lp.gather(-1, targets.unsqueeze(-1)).sum().item()
            # renormalised, the fp16-stored reference is a proper distribution: the KL is >= 0
            # by construction, with a floor of ~ulp^2/24 from the rounding (~1e-6 nats/token);
            # used raw, the rounding's bias (~1e-4 either way) swamped the small KLs of gentle
            # formats on small models
            ref_lp = torch.log_softmax(ref.to(lp.device).float(), dim=-1)
            kl += (ref_lp.exp() * (ref_lp - lp)).sum().item()
        n = self.tokens
        return math.exp(nll / n), max(kl / n, 0.0)

    def measure_formats(self, formats: Mapping[str, QuantFormat]) -> Measurement:
        """The model with `formats` applied (16-bit entries left as loaded), then restored."""
        quantized = {name: fmt for name, fmt in formats.items() if not fmt.is_float}
        if not quantized:
            return self.reference
        t = time.perf_counter()
        with temporarily_quantized(self.model, quantized):
            ppl, kl = self._score()
        return self._result(ppl, kl, self.reference.perplexity, time.perf_counter() - t)

    def measure(self, plan: Plan) -> Measurement:
        if not plan.calibrated:
            return self.measure_formats(plan.formats)
        if self.calibration is None:
            raise ValueError("the plan has gptq/awq layers: the meter needs calibration windows")
        quantized = Plan({n: f for n, f in plan.formats.items() if not f.is_float}, plan.model, {},
                         plan.calibrated_layers)
        t = time.perf_counter()
        with temporarily_quantized(self.model, quantized, self.calibration):
            ppl, kl = self._score()
        return self._result(ppl, kl, self.reference.perplexity, time.perf_counter() - t)

    def measure_model(self, model: nn.Module) -> Measurement:
        """Another copy of the meter's model, already quantized (say, loaded from an export),
        against this meter's reference."""
        t = time.perf_counter()
        own, self.model = self.model, model
        try:
            ppl, kl = self._score()
        finally:
            self.model = own
        return self._result(ppl, kl, self.reference.perplexity, time.perf_counter() - t)

    def measure_layer(self, layer: str, fmt: QuantFormat, weight: torch.Tensor | None = None) -> Measurement:
        """Only `layer` quantized: the measured sensitivity of one (layer, format); `weight`, the
        [N, K] weight another quantizer gave it (`autoquant.quantizers.single`), else round-to-nearest."""
        if weight is None:
            return self.measure_formats({layer: fmt})
        t = time.perf_counter()
        with temporarily_replaced(self.model, {layer: weight}):
            ppl, kl = self._score()
        return self._result(ppl, kl, self.reference.perplexity, time.perf_counter() - t)


def eval_windows(source: ModelSource, text: TextSource, tokens: int = DEFAULT_EVAL_TOKENS,
                 seq_len: int = SEQ_LEN) -> torch.Tensor:
    """The evaluation windows every command cuts from `text`: windows of min(seq_len, tokens)."""
    return token_windows(load_tokenizer(source), text, min(seq_len, tokens), tokens)


def load_meter(source: ModelSource, text: TextSource, tokens: int = DEFAULT_EVAL_TOKENS,
               seq_len: int = SEQ_LEN, device: str | None = None) -> QualityMeter:
    """Load the model (fp32, on `device` or `default_device()`) and its reference on `text`."""
    model = load_model(source, dtype=torch.float32, device=device or default_device())
    return QualityMeter(model, eval_windows(source, text, tokens, seq_len), text)
