"""One layer quantized on its own: the weight a quantizer gives it, from the layer's input
second moment H (any scale) alone, not calibrated block by block as `calibrate.quantize_model`
quantizes a whole model. What the sensitivity profile measures per (layer, format, quantizer):
like round-to-nearest's entries, each says what quantizing that one layer costs.
"""

from __future__ import annotations

import torch

from autoquant.formats import QuantFormat
from autoquant.quant import dequantize, fake_quantize, quantize
from autoquant.quantizers.awq import awq_scales
from autoquant.quantizers.gptq import gptq


@torch.no_grad()
def quantized_alone(w: torch.Tensor, fmt: QuantFormat, quantizer: str, h: torch.Tensor | None,
                    act_order: bool = True) -> torch.Tensor:
    """The dequantized weight [N, K] (float32, W's basis) that `quantizer` gives W in `fmt`.
    awq: Q(W diag(s)) diag(s)^-1, the scale folded back, as the model computes it."""
    w = w.detach().float()
    if quantizer == "rtn" or fmt.is_float or fmt.is_gguf:
        return fake_quantize(w, fmt)
    if h is None:
        raise ValueError(f"{quantizer} needs the layer's input second moment H")
    h = torch.as_tensor(h, device=w.device).float()
    if quantizer == "gptq":
        return dequantize(gptq(w, fmt, h, act_order=act_order), dtype=torch.float32)
    if quantizer == "awq":
        s = awq_scales([w], [fmt], h)
        return dequantize(quantize(w * s, fmt), dtype=torch.float32) / s
    raise ValueError(f"unknown quantizer {quantizer!r}")
