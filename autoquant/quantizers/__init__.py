"""Quantizers: how a weight's codes are chosen. Each returns an ordinary `QuantizedWeight`
(codes + fp16 scales + zero points, `autoquant.quant`), so kernels, memory model and export
serve every one unchanged.

    rtn    round-to-nearest (`autoquant.quant.quantize`); needs no calibration.
    gptq   GPTQ (Frantar et al. 2022), `gptq.py`: error-compensating, from the layer's input
           Hessian H = X^T X on calibration text.
    awq    activation-aware scaling (Lin et al. 2023), `awq.py`: per-input-channel scales searched
           on H, folded into the op that writes the layer's input.
    calibrate.py  quantizes a whole model under a plan, block by block: each block's H comes
           from the outputs of the blocks before it, already quantized (as GPTQ's reference does).
"""

from __future__ import annotations

QUANTIZERS = ("rtn", "gptq", "awq")
CALIBRATED = ("gptq", "awq")  # quantizers that need calibration text
# awq's input scale folds into the op before the layer only for these roles (Llama-style blocks):
# a norm before q/k/v and gate/up, up_proj's rows before down_proj.
AWQ_ROLES = ("q", "k", "v", "gate", "up", "down")


def parse_quantizer(name: str) -> str:
    q = name.strip().lower()
    if q not in QUANTIZERS:
        raise ValueError(f"unknown quantizer {name!r}; expected one of {', '.join(QUANTIZERS)}")
    return q


def quantizer_for_role(quantizer: str, role: str) -> str:
    """What a uniform `--quantizer` gives a layer of `role`: awq only where its scale folds
    (o_proj and lm_head keep rtn, as AutoAWQ does); rtn and gptq everywhere."""
    return "rtn" if quantizer == "awq" and role not in AWQ_ROLES else quantizer
