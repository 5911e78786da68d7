"""B models of one MLP architecture run as one stacked model: the models' own ``forward`` on
tensors with a leading model axis, without ``vmap``.

:class:`~linvae.nn.BatchedTrainer` trains several configurations of one network together.  Under
``torch.func.vmap`` the weight gradients of every linear layer come back in a transposed layout
that autograd copies out every step (≈ 20 % of a step of the paper's 784–256–16 MLPs,
``torch.profiler``; benchmarks/RESULTS.md).  Here the model's ``forward`` runs unchanged on a
*shadow* of the model in which

- each :class:`torch.nn.Linear` is one ``baddbmm`` over the stacked weights, held transposed
  (B, in, out): the layout in which the GEMM's backward produces their gradient, so autograd
  accumulates it without a copy (held as (B, out, in), every step copied the transposed
  gradient: a quarter of a tanh MHVAE step, ``torch.profiler``);
- every other parameter or buffer (the heads' global or fixed σ) is the stack with an axis of 1
  after the model axis, so that it broadcasts against (B, n, d) activations;
- the scalar hyperparameters (β, η, …) are tensors of shape (B, 1, 1).

The models' forward code is written to broadcast that way (per-example terms keep a trailing axis
of 1 until the batch mean, see :func:`linvae.nn.models._nll`), so each loss has one definition.
Which networks qualify is :func:`supports_stacking`; the others (convolutions, batch norm) stay on
``vmap``.  Both paths are tested against sequential training (``tests/test_nn_stacked.py``,
``tests/test_nn_authors.py``).

One GEMM per model on separate per-model weights was measured too: 3.4 against 4.1 ms per model
and step for this layout (tanh MHVAE, B = 10, the clipping and Adam included), because the
per-model gradients then cost a clipping and an update per tensor.
"""
import contextlib
import copy

import torch
from torch import nn

from .models import GaussianHead

__all__ = ["supports_stacking", "StackedModel"]

#: module types the stacked shadow can run (anything else keeps the model on ``vmap``)
_PLAIN = (nn.Sequential, nn.ReLU, nn.Tanh, nn.Identity)


def supports_stacking(model):
    """Whether ``model`` can run as a :class:`StackedModel`: its parameters and buffers sit only in
    :class:`torch.nn.Linear` layers and Gaussian heads, and its other modules are containers and
    elementwise activations (the MLP families; not the convolutional or ResNet networks)."""
    from .authors import _Branch

    allowed = (nn.Linear, GaussianHead, _Branch) + _PLAIN
    return all(m is model or isinstance(m, allowed) for m in model.modules()) and not any(
        True for _ in model.named_parameters(recurse=False))


@contextlib.contextmanager
def hyperparameters(module, values):
    """Temporarily give ``module`` per-configuration hyperparameters (0-d tensors under ``vmap``,
    (B, 1, 1) tensors on a stack)."""
    saved = {k: getattr(module, k) for k in values}
    try:
        for k, v in values.items():
            setattr(module, k, v)
        yield
    finally:
        for k, v in saved.items():
            setattr(module, k, v)


class _StackedLinear(nn.Module):
    """A linear layer of B models: ``(B, n, in) → (B, n, out)`` with transposed weights (B, in, out)."""

    def __init__(self, weight_t, bias):
        super().__init__()
        self.weight_t, self.bias = weight_t, bias

    def forward(self, x):
        if self.bias is None:
            return torch.bmm(x, self.weight_t)
        return torch.baddbmm(self.bias.unsqueeze(1), x, self.weight_t)


class StackedModel:
    """The parameters of B models of one class, and the model's forward run on all of them at once.

    Parameters
    ----------
    models : sequence of torch.nn.Module
        Models of one class and shapes, for which :func:`supports_stacking` holds.

    Attributes
    ----------
    params : dict
        Name → the stacked parameter (B, ...) in the models' own layout (a view of its leaf).
    leaves : list of torch.Tensor
        The tensors the optimizer updates (the linear weights transposed, (B, in, out)).
    buffers : dict
        Name → stacked buffer (B, ...).
    """

    def __init__(self, models):
        models = list(models)
        self.B = len(models)
        base = models[0]
        self.shadow = copy.deepcopy(base).to("meta")
        linear = {f"{name}.weight" for name, module in base.named_modules() if isinstance(module, nn.Linear)}
        leaves = {}
        for name, _ in base.named_parameters():
            values = [m.get_parameter(name).detach() for m in models]
            leaves[name] = torch.stack([v.t() for v in values] if name in linear else values).requires_grad_(True)
        self.leaves = list(leaves.values())
        self.params = {k: v.transpose(1, 2) if k in linear else v for k, v in leaves.items()}
        self.buffers = {name: torch.stack([m.get_buffer(name).detach() for m in models])
                        for name, _ in base.named_buffers()}
        # the broadcast tensors (σ heads) refreshed before every forward: (module, attribute, stack)
        self._broadcast = []
        for name, module in list(self.shadow.named_modules()):
            if isinstance(module, nn.Linear):
                bias = leaves[f"{name}.bias"] if module.bias is not None else None
                self._replace(name, _StackedLinear(leaves[f"{name}.weight"], bias))
                continue
            for kind, store in (("_parameters", leaves), ("_buffers", self.buffers)):
                for attr in list(getattr(module, kind)):
                    del getattr(module, kind)[attr]
                    self._broadcast.append((module, attr, store[f"{name}.{attr}" if name else attr]))

    def _replace(self, name, new):
        parent_name, _, attr = name.rpartition(".")
        parent = self.shadow.get_submodule(parent_name) if parent_name else self.shadow
        setattr(parent, attr, new)

    def __call__(self, hyper, batch, noise):
        """The per-model losses (B,) and summed KLs (B,) of one step.

        ``hyper``: name → (B,) tensor; ``batch``: the (B, n, ·) data tensors; ``noise``: the
        (B, n, ·) reparameterization draws of :meth:`noise_shapes`, in order."""
        for module, attr, stack in self._broadcast:
            setattr(module, attr, stack.unsqueeze(1))
        with hyperparameters(self.shadow, {k: v.reshape(-1, 1, 1) for k, v in hyper.items()}):
            out = self.shadow(*batch, noise=noise)
        return out["loss"], out["kl"].sum(-1)
