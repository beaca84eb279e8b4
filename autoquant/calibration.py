"""Calibration for the quantizers that need it (gptq, awq): one pass over calibration text.

The input moments come from the same hooks the sensitivity profile uses
(`sensitivity.statistics.collect_statistics`, without the gradient half), so a layer is
quantized from the statistics its sensitivity was measured with.
"""

from __future__ import annotations

from torch import nn

from autoquant.data import TextSource, calibration_text, token_windows
from autoquant.layers import discover_layers
from autoquant.plan import Plan
from autoquant.quantizers import CALIBRATED
from autoquant.sensitivity.statistics import LayerStatistics, collect_statistics

DEFAULT_CALIB_TOKENS = 4096  # GPTQ's Hessians of 1.5k-wide inputs need a few thousand tokens
CALIB_WINDOW = 512


def needs_calibration(plan: Plan) -> bool:
    return any(plan.quantizer_of(n) in CALIBRATED for n in plan.formats)


def input_moments(
    model: nn.Module, tokenizer, text: TextSource | None = None, tokens: int = DEFAULT_CALIB_TOKENS, seq_len: int = CALIB_WINDOW
) -> LayerStatistics:
    """H = X^T X / n of every linear layer's input over `tokens` of `text` (default wikitext-2 valid)."""
    text = text or calibration_text()
    windows = token_windows(tokenizer, text, min(seq_len, tokens), tokens)
    return collect_statistics(model, discover_layers(model), windows, with_grads=False)

