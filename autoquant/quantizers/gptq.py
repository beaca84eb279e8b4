"""GPTQ (Frantar et al. 2022, "GPTQ: Accurate Post-Training Quantization for Generative
Pre-trained Transformers"), for one weight W [N, K] given its input Hessian H = X^T X [K, K].

Columns are quantized in order; each column's rounding error, divided by the diagonal of the
upper Cholesky factor U of H^-1, is spread over the columns not yet quantized (row i of U),
in lazy blocks of `block` columns. H is dampened by `damp` x mean(diag H) first. A group's
scale and zero are chosen when its first column is reached, from the weights as updated so far
(the reference implementation's order). With `act_order` the columns go in order of decreasing
diag(H), but the groups' qparams are fixed beforehand from the untouched weights ("static
groups"), so the stored layout stays contiguous groups that every kernel and export serves.
Columns are rounded with `autoquant.quant.quantize_codes`' float32 arithmetic, written inline
(the loop is launch-bound; the codes are identical). Whole-model quantization
(`calibrate.quantize_model`) uses act-order by default.
"""

from __future__ import annotations

import torch

from autoquant.formats import QuantFormat
from autoquant.quant import QuantizedWeight, choose_qparams, pack_weight

DAMP = 0.01  # fraction of mean(diag H) added to the diagonal (the paper's default)
BLOCK = 128  # columns per lazy-batch block


def inverse_cholesky(h: torch.Tensor, damp: float = DAMP) -> torch.Tensor:
    """Upper Cholesky factor of (H + damp * mean(diag H) I)^-1: float32 as in the reference
    implementation, float64 where float32 loses positive definiteness."""
    idx = torch.arange(h.shape[0], device=h.device)
    for dtype in (torch.float32, torch.float64):
        hd = h.to(dtype).clone()
        hd[idx, idx] += damp * torch.mean(torch.diag(hd))
        try:
            lower = torch.linalg.cholesky(hd)
            return torch.linalg.cholesky(torch.cholesky_inverse(lower), upper=True).float()
        except torch.linalg.LinAlgError:
            continue
    raise ValueError("the input Hessian is not positive definite even dampened: too little calibration text?")


@torch.no_grad()
def gptq(w: torch.Tensor, fmt: QuantFormat, h: torch.Tensor, *, damp: float = DAMP, block: int = BLOCK,
         act_order: bool = False) -> QuantizedWeight:
    """W [N, K] quantized under integer `fmt` by GPTQ with input Hessian H [K, K] (any scale)."""
    if fmt.is_float or fmt.is_gguf:
        raise ValueError(f"gptq quantizes autoquant's integer formats, not {fmt}")
    n, k = w.shape
    dev = w.device  # everything on W's device: a GPU profile or calibration quantizes on the GPU
    w = w.detach().float().clone()
    h = h.detach().float().to(dev).clone()
    dead = torch.diag(h) == 0  # inputs that never fire: their weights cannot matter
    h[dead, dead] = 1.0
    w[:, dead] = 0.0
    group = fmt.effective_group(k)
    grouped = fmt.group_size is not None
    if grouped:
        block = max(group, block - block % group)  # a group never straddles two blocks
    scales = torch.zeros(n, fmt.groups(k), dtype=torch.float16, device=dev)
    zeros = None if fmt.symmetric else torch.zeros(n, fmt.groups(k), dtype=torch.uint8, device=dev)
    static = not grouped or act_order
    if static:  # qparams fixed up front: per channel, or static groups under act-order
        s, z = choose_qparams(w, fmt)
        scales[:] = s
        if zeros is not None:
            zeros[:] = z
    perm = torch.argsort(torch.diag(h), descending=True) if act_order else torch.arange(k, device=dev)
    w, h = w[:, perm], h[perm][:, perm]
    u = inverse_cholesky(h, damp)
    codes = torch.zeros(n, k, dtype=torch.uint8, device=dev)
    columns = perm.tolist()  # once, not a device sync per column
    # The column loop is launch-bound (a handful of small kernels per column): the qparams are kept
    # as float32 beside their fp16/uint8 stored form, and each column is rounded here with the same
    # float32 arithmetic as quantize_codes (tests/quantizers/test_gptq.py checks the codes).
    sf = scales.float()
    zf = None if zeros is None else zeros.float()
    qmax = float(fmt.qmax)
    for b0 in range(0, k, block):
        b1 = min(b0 + block, k)
        w1 = w[:, b0:b1].clone()
        err = torch.zeros_like(w1)
        for i in range(b1 - b0):
            col = columns[b0 + i]  # the column's place in the stored layout
            gi = col // group if grouped else 0
            if not static and col % group == 0:
                s, z = choose_qparams(w1[:, i : i + group], fmt)
                scales[:, gi : gi + 1] = s
                sf[:, gi : gi + 1] = s.float()
                if zeros is not None:
                    zeros[:, gi : gi + 1] = z
                    zf[:, gi : gi + 1] = z.float()
            s_col = sf[:, gi]
            z_col = float(fmt.sym_zero) if zf is None else zf[:, gi]
            x = w1[:, i]
            q = torch.round(x / s_col).add_(z_col).clamp_(0, qmax)
            codes[:, col] = q
            e = (x - (q - z_col) * s_col) / u[b0 + i, b0 + i]
            w1[:, i:].addr_(e, u[b0 + i, b0 + i : b1], alpha=-1.0)
            err[:, i] = e
        w[:, b1:] -= err @ u[b0:b1, b1:]
    return pack_weight(codes, fmt, scales, zeros)
