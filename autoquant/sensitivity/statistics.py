"""One calibration pass: what each linear layer sees, for the proxy error.

For every linear layer we collect, over the calibration tokens x_t (rows of X):

  * H = X^T X / n, the second moment of its input [K, K]. Layers reading the same tensor
    (q/k/v of a block, gate/up) share one H: it is stored once, under the first of them.
  * G = mean_t g_t^2, the per-output-channel mean square of the gradient of the loss at the
    layer's output [N], with next tokens *sampled from the model itself*. That makes G the
    diagonal of the model's Fisher information at that output, so 0.5 * sum_i G_i dY_i^2
    approximates the KL divergence a small output perturbation dY causes (see proxy.py).

Both come from one forward + backward per window with hooks; weights get no gradients
(the graph starts at the input embeddings), so the pass costs about three forwards.
Partial statistics from several workers (disjoint windows) add up with `merge`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from autoquant.layers import LinearLayer


@dataclass
class LayerStatistics:
    """Sums over calibration tokens; divide by `tokens` for means (see `moment`, `grad_sq`)."""

    tokens: int
    input_sums: dict[str, np.ndarray]  # input key -> sum_t x_t x_t^T  [K, K], float32 (they travel between workers)
    input_of: dict[str, str]  # layer name -> input key (shared inputs share a key)
    grad_sq_sums: dict[str, np.ndarray] = field(default_factory=dict)  # layer -> sum_t g_t^2 [N]

    def moment(self, layer: str) -> np.ndarray:
        """H = X^T X / n of the layer's input."""
        return self.input_sums[self.input_of[layer]] / self.tokens

    def grad_sq(self, layer: str) -> np.ndarray | None:
        s = self.grad_sq_sums.get(layer)
        return None if s is None else s / self.tokens

    def merge(self, other: LayerStatistics) -> LayerStatistics:
        """Statistics of the union of both windows (the sums add; aliases must agree)."""
        if other.input_of != self.input_of:
            raise ValueError("statistics of different models cannot be merged")
        return LayerStatistics(
            self.tokens + other.tokens,
            {k: v + other.input_sums[k] for k, v in self.input_sums.items()},
            self.input_of,
            {k: v + other.grad_sq_sums[k] for k, v in self.grad_sq_sums.items()},
        )

    def subset(self, layers: list[str]) -> LayerStatistics:
        """Only what `layers` need: ships less to a worker."""
        keys = {self.input_of[name] for name in layers}
        return LayerStatistics(
            self.tokens,
            {k: self.input_sums[k] for k in keys},
            {name: self.input_of[name] for name in layers},
            {name: self.grad_sq_sums[name] for name in layers if name in self.grad_sq_sums},
        )


class _Hooks:
    """Forward pre-hooks accumulating X^T X, forward hooks registering output-gradient hooks."""

    def __init__(self, model: nn.Module, layers: list[LinearLayer], with_grads: bool):
        self.input_sums: dict[str, torch.Tensor] = {}
        self.grad_sums: dict[str, torch.Tensor] = {}
        self.input_of: dict[str, str] = {}
        self._first_pass = True
        self._alive: dict[tuple, tuple[torch.Tensor, str]] = {}  # keeps seen inputs alive: no address reuse
        self._handles = []
        for layer in layers:
            module = model.get_submodule(layer.name)
            self._handles.append(module.register_forward_pre_hook(self._input_hook(layer.name)))
            if with_grads:
                self._handles.append(module.register_forward_hook(self._output_hook(layer.name)))

    def _input_hook(self, name: str):
        def hook(module: nn.Module, args: tuple) -> None:
            x = args[0].detach()
            if self._first_pass:
                # Same storage, shape and strides: the same tensor (q/k/v, gate/up). Holding a
                # reference to every seen input means no address is reused within the pass.
                key = (x.data_ptr(), tuple(x.shape), tuple(x.stride()))
                if key in self._alive:
                    self.input_of[name] = self._alive[key][1]
                    return
                self._alive[key] = (x, name)
                self.input_of[name] = name
            elif self.input_of[name] != name:
                return  # shares its input with a layer already accumulated
            flat = x.reshape(-1, x.shape[-1]).float()
            xtx = flat.T @ flat
            if name in self.input_sums:
                self.input_sums[name] += xtx
            else:
                self.input_sums[name] = xtx

        return hook

    def _output_hook(self, name: str):
        def hook(module: nn.Module, args: tuple, out: torch.Tensor) -> None:
            if not out.requires_grad:
                return

            def grad_hook(g: torch.Tensor) -> None:
                sq = g.detach().float().pow(2).reshape(-1, g.shape[-1]).sum(0)
                if name in self.grad_sums:
                    self.grad_sums[name] += sq
                else:
                    self.grad_sums[name] = sq

            out.register_hook(grad_hook)

        return hook

    def end_pass(self) -> None:
        self._first_pass = False
        self._alive.clear()

    def remove(self) -> None:
        for h in self._handles:
            h.remove()


def _sampled_nll(logits: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """-log p(y) summed over positions, y drawn from p itself: its gradient samples the Fisher."""
    logp = F.log_softmax(logits.float(), dim=-1)
    with torch.no_grad():
        y = torch.multinomial(logp.reshape(-1, logp.shape[-1]).exp(), 1, generator=generator)
    return -logp.reshape(-1, logp.shape[-1]).gather(1, y).sum()


def collect_statistics(
    model: nn.Module, layers: list[LinearLayer], windows: torch.Tensor, *, with_grads: bool = True, seed: int = 0
) -> LayerStatistics:
    """Run the calibration windows [n, seq] through the model once, hooks on every layer."""
    device = next(model.parameters()).device
    hooks = _Hooks(model, layers, with_grads)
    generator = torch.Generator(device=device).manual_seed(seed)
    embed = model.get_input_embeddings()
    was_training = model.training
    model.eval()
    requires = {n: p.requires_grad for n, p in model.named_parameters()}
    model.requires_grad_(False)
    try:
        for window in windows.split(1):
            ids = window.to(device)
            if with_grads:
                with torch.enable_grad():
                    emb = embed(ids).detach().requires_grad_(True)  # graph from activations, not weights
                    logits = model(inputs_embeds=emb, use_cache=False).logits
                    _sampled_nll(logits, generator).backward()
            else:
                with torch.inference_mode():
                    model(ids, use_cache=False)
            hooks.end_pass()
    finally:
        hooks.remove()
        for n, p in model.named_parameters():
            p.requires_grad_(requires[n])
        model.train(was_training)
    tokens = windows.numel()
    return LayerStatistics(
        tokens,
        {k: v.cpu().numpy() for k, v in hooks.input_sums.items()},
        dict(hooks.input_of),
        {k: v.double().cpu().numpy() for k, v in hooks.grad_sums.items()},
    )


@torch.no_grad()
def input_sum(model: nn.Module, layer: str, windows: torch.Tensor) -> tuple[torch.Tensor, int]:
    """sum_t x_t x_t^T of `layer`'s input over `windows` [n, seq] (float32) and the token count:
    what to take out of the calibration sums to quantize the layer without these tokens."""
    device = next(model.parameters()).device
    total: list[torch.Tensor] = []

    def hook(module: nn.Module, args: tuple) -> None:
        flat = args[0].detach().reshape(-1, args[0].shape[-1]).float()
        total.append(flat.T @ flat if not total else total.pop() + flat.T @ flat)

    handle = model.get_submodule(layer).register_forward_pre_hook(hook)
    try:
        for window in windows.split(1):
            model(window.to(device), use_cache=False)
    finally:
        handle.remove()
    return total[0], int(windows.numel())
