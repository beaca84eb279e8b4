"""Real measurement of plans: perplexity and KL on held-out text with the quantized weights.

The model is loaded once; the reference log-probabilities are computed once (the
`QualityEvaluator`); each plan is then applied fake-quantized for the duration of one
evaluation and the original weights put back (`temporarily_quantized`), so measuring a
plan costs one forward pass over the evaluation windows and no reload.

Layers a plan leaves in a 16-bit format are left as loaded: the reference is the loaded
model, so uniform fp16 measures as the reference itself (KL 0).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch

from autoquant.apply import temporarily_quantized
from autoquant.calibration import needs_calibration
from autoquant.data import TextSource, token_windows
from autoquant.evaluate import QualityEvaluator
from autoquant.models import ModelSource, load_model, load_tokenizer
from autoquant.plan import Plan

DEFAULT_EVAL_TOKENS = 4096
SEQ_LEN = 512


@dataclass(frozen=True)
class Measurement:
    """Quality of one plan on the evaluation text, against the unquantized model."""

    perplexity: float
    kl: float  # mean KL(reference || plan), nats/token
    ppl_change: float  # relative to the reference perplexity, 0.03 = +3%
    tokens: int
    text: str
    text_fingerprint: str
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Measurement:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__})


class PlanMeasurer:
    """Scores plans on fixed evaluation windows; built once per search."""

    def __init__(self, source: ModelSource, text: TextSource, tokens: int = DEFAULT_EVAL_TOKENS,
                 device: str | None = None, calib: TextSource | None = None) -> None:
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.text = text
        self.source, self.calib, self._moments = source, calib, None  # gptq/awq: moments on first use
        self.model = load_model(source, dtype=torch.float32, device=device)
        seq_len = min(SEQ_LEN, tokens)
        windows = token_windows(load_tokenizer(source), text, seq_len, tokens)
        t = time.perf_counter()
        self.evaluator = QualityEvaluator(self.model, windows)
        ref = self.evaluator.reference
        self.reference = Measurement(ref.perplexity, 0.0, 0.0, ref.tokens, text.name, text.fingerprint,
                                     time.perf_counter() - t)

    @property
    def tokens(self) -> int:
        return self.evaluator.tokens

    def measure(self, plan: Plan) -> Measurement:
        quantized = {name: fmt for name, fmt in plan.formats.items() if not fmt.is_float}
        if not quantized:
            return self.reference
        t = time.perf_counter()
        if needs_calibration(plan):
            q = self._evaluate_calibrated(plan)
        else:
            with temporarily_quantized(self.model, quantized):
                q = self.evaluator.evaluate(self.model)
        return Measurement(
            q.perplexity, q.kl, q.ppl_change(self.reference.perplexity), q.tokens,
            self.text.name, self.text.fingerprint, time.perf_counter() - t,
        )

    def _evaluate_calibrated(self, plan: Plan):
        """gptq/awq plans as `apply_plan` builds them (awq folded into norms: on a copy of the model)."""
        import copy

        from autoquant.apply import apply_plan
        from autoquant.calibration import input_moments

        if self._moments is None:
            self._moments = input_moments(self.model, load_tokenizer(self.source), self.calib)
        model = apply_plan(copy.deepcopy(self.model), plan, "fake", self._moments)
        try:
            return self.evaluator.evaluate(model)
        finally:
            del model
