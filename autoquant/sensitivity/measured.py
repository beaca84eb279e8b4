"""The measured cost of one (layer, format): the full model with only that layer quantized.

KL(p_ref || p_quantized) of the next-token distribution, averaged over the measurement
tokens (nats/token), and the relative perplexity change, both from
`autoquant.evaluate.QualityEvaluator` against the unquantized model on the same windows.
The reference distribution is computed once per meter (one model per worker); each
measurement is then one forward pass with the layer fake-quantized in place and restored
(`autoquant.apply.temporarily_quantized`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from autoquant.apply import temporarily_quantized
from autoquant.evaluate import QualityEvaluator
from autoquant.formats import QuantFormat


@dataclass(frozen=True)
class Measurement:
    kl: float  # nats/token
    ppl_change: float  # relative, 0.01 = +1%
    tokens: int  # tokens scored (windows x (window length - 1))
    reference_perplexity: float  # of the unquantized model on the same windows


class KLMeter:
    """Measures one layer at a time on fixed windows [n, seq] of token ids."""

    def __init__(self, model: nn.Module, windows: torch.Tensor, batch_size: int = 4):
        self.model = model
        self.evaluator = QualityEvaluator(model, windows, batch_size=batch_size)

    @property
    def reference_perplexity(self) -> float:
        return self.evaluator.reference.perplexity

    def measure(self, layer: str, fmt: QuantFormat, quantizer: str = "rtn", moment=None) -> Measurement:
        """`moment`: H of the layer's input, for gptq and awq (awq alone: its s divided back out)."""
        with temporarily_quantized(self.model, {layer: fmt}, {layer: quantizer}, {layer: moment}):
            result = self.evaluator.evaluate(self.model)
        return Measurement(result.kl, result.ppl_change(self.reference_perplexity), result.tokens, self.reference_perplexity)
