"""Quality of a (quantized) model against its unquantized self on fixed text.

Perplexity on the text, and the KL divergence KL(p_ref || p_model) of the next-token
distribution, averaged over tokens (nats). The reference log-probabilities are computed
once and kept in fp16 (the vocabulary is large; fp16 keeps the KL noise floor near 1e-5 nats)
so each evaluation is one forward pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class QualityResult:
    perplexity: float
    kl: float  # mean KL(reference || model), nats/token
    tokens: int

    def ppl_change(self, reference_ppl: float) -> float:
        """Relative perplexity change, 0.03 = +3%."""
        return self.perplexity / reference_ppl - 1.0


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.inference_mode()
def _logprobs(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    logits = model(ids.to(_device(model)), use_cache=False).logits[:, :-1]
    return F.log_softmax(logits.float(), dim=-1)


class QualityEvaluator:
    """Scores models on fixed windows against the reference model's distribution."""

    def __init__(self, reference: nn.Module, windows: torch.Tensor, batch_size: int = 4):
        self.windows = windows
        self.batch_size = batch_size
        self._ref: list[torch.Tensor] = [
            _logprobs(reference, b).to(torch.float16).cpu() for b in windows.split(batch_size)
        ]
        nll = sum(
            -ref.float().gather(-1, b[:, 1:].unsqueeze(-1)).sum().item()
            for b, ref in zip(windows.split(batch_size), self._ref)
        )
        self.reference = QualityResult(math.exp(nll / self.tokens), 0.0, self.tokens)

    @property
    def tokens(self) -> int:
        return self.windows.shape[0] * (self.windows.shape[1] - 1)

    @torch.inference_mode()
    def _score(self, model: nn.Module, with_kl: bool = True) -> QualityResult:
        nll = kl = 0.0
        for batch, ref in zip(self.windows.split(self.batch_size), self._ref):
            lp = _logprobs(model, batch)
            targets = batch[:, 1:].to(lp.device)
            nll += -lp.gather(-1, targets.unsqueeze(-1)).sum().item()
            if with_kl:
                # renormalised, the fp16-stored reference is a proper distribution: the KL is >= 0
                # by construction, with a floor of ~ulp^2/24 from the rounding (~1e-6 nats/token);
                # used raw, the rounding's bias (~1e-4 either way) swamped the small KLs of gentle
                # formats on small models
                ref_lp = torch.log_softmax(ref.to(lp.device).float(), dim=-1)
                kl += (ref_lp.exp() * (ref_lp - lp)).sum().item()
        n = self.tokens
        return QualityResult(math.exp(nll / n), max(kl / n, 0.0), n)

    def evaluate(self, model: nn.Module) -> QualityResult:
        return self._score(model, with_kl=True)


@torch.inference_mode()
def perplexity(model: nn.Module, windows: torch.Tensor, batch_size: int = 4) -> float:
    nll = 0.0
    for batch in windows.split(batch_size):
        lp = _logprobs(model, batch)
        nll += -lp.gather(-1, batch[:, 1:].to(lp.device).unsqueeze(-1)).sum().item()
    return math.exp(nll / (windows.shape[0] * (windows.shape[1] - 1)))
