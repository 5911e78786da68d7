"""Array kernels: the NumPy backend (``backend="numpy"``) and the engine of the CuPy backend.

The entries :func:`train_vae` and :func:`train_mhvae` implement the contract of
:mod:`linvae.kernels.contract` with whole-batch array code: the readable
:mod:`linvae.objectives` losses and gradients, vectorized over the configuration axis, the
rules of :func:`~linvae.kernels.contract.make_rules` on arrays, and an optimizer update
(:func:`update_numpy` here, a fused CuPy kernel in :mod:`linvae.kernels.gpu`). With NumPy arrays
this is ``backend="numpy"``; with CuPy arrays it is the GPU backend.
"""
import numpy as np

from .. import objectives
from .contract import CONVERGED, DIVERGED, RUNNING, make_rules, unpack

__all__ = ["train_vae", "train_mhvae", "train_batched", "loss_grad", "update_numpy"]

_RULES = {}


def _rules(xp):
    if xp not in _RULES:
        _RULES[xp] = make_rules(xp)
    return _RULES[xp]


def loss_grad(family, Z, params, hyper, dims, learn, xp=np):
    """Loss (B,) and packed gradient (B, P) of ``family`` ("vae" or "mhvae") from the objectives module."""
    blocks = unpack(family, params, dims)
    if family == "vae":
        loss, grads = objectives.cvae_whitened_loss_grad(
            Z, *blocks, hyper[:, 0], hyper[:, 1], hyper[:, 2], learn_sigma=bool(learn[0]), xp=xp)
    else:
        loss, grads = objectives.mhvae_whitened_loss_grad(
            Z, *blocks, hyper[:, 0], hyper[:, 1], hyper[:, 2], hyper[:, 3],
            learn_sigma1=bool(learn[0]), learn_sigma2=bool(learn[1]), xp=xp)
    return loss, xp.concatenate([g.reshape(params.shape[0], -1) for g in grads], axis=1)


def update_numpy(params, g, m, v, lr_t, t, adam, b1, b2, eps, xp=np, momentum=0.0):
    """Optimizer update of the rows ``params`` (B', P) (copies of the caller's rows).

    Returns the new ``(params, m, v)``. ``lr_t`` and ``t`` have shape (B', 1). GD keeps its
    velocity in ``m`` (``momentum = 0``: plain GD).
    """
    if not adam:
        m = momentum * m + g
        return params - lr_t * m, m, v
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    return params - lr_t * (m / (1 - b1**t)) / (xp.sqrt(v / (1 - b2**t)) + eps), m, v


def train_batched(family, problem, state, options, n_steps, *, xp=np, update=update_numpy):
    """The contract of :mod:`linvae.kernels.contract` for ``family``, on arrays of module ``xp``.

    ``update`` applies the optimizer step (:func:`update_numpy` or the fused CuPy update).
    """
    rules = _rules(xp)
    o = options
    for _ in range(int(n_steps)):
        idx = xp.flatnonzero(state.status == RUNNING)
        if idx.size == 0:
            return
        loss, g = loss_grad(family, problem.Z, state.params[idx], problem.hyper[idx], problem.dims,
                            problem.learn, xp=xp)
        gn = xp.sqrt(xp.sum(g * g, axis=1))
        state.loss[idx], state.grad_norm[idx] = loss, gn
        state.grad[idx] = g
        diverged, converged = rules.stopped(loss, gn, state.prev_loss[idx], o.tol, o.gtol)
        state.status[idx[diverged]] = DIVERGED
        state.status[idx[converged]] = CONVERGED
        go = xp.logical_not(xp.logical_or(diverged, converged))
        idx, g, gn, loss = idx[go], g[go], gn[go], loss[go]
        if o.momentum > 0 and not o.adam:
            state.adam_m[idx] = state.adam_m[idx] * rules.velocity_kept(loss, state.prev_loss[idx])[:, None]
        if o.adapt > 0 and not o.adam:
            state.lr[idx] = rules.bold_driver(state.lr[idx], loss, state.prev_loss[idx], o.adapt)
        state.prev_loss[idx] = loss
        state.step[idx] += 1
        lr_t = rules.decayed_lr(state.lr[idx], o.lr_decay, state.step[idx])[:, None]
        if o.clip > 0:
            g = g * rules.clip_factor(gn, o.clip)[:, None]
        tt = state.step[idx][:, None].astype(state.params.dtype)
        state.params[idx], state.adam_m[idx], state.adam_v[idx] = update(
            state.params[idx], g, state.adam_m[idx], state.adam_v[idx], lr_t, tt, o.adam, o.b1, o.b2, o.eps, xp=xp,
            momentum=o.momentum)


def train_vae(problem, state, options, n_steps, *, parallel=None):
    """NumPy twin of :func:`linvae.kernels.cpu.train_vae` (``parallel`` is ignored)."""
    train_batched("vae", problem, state, options, n_steps)


def train_mhvae(problem, state, options, n_steps, *, parallel=None):
    """NumPy twin of :func:`linvae.kernels.cpu.train_mhvae` (``parallel`` is ignored)."""
    train_batched("mhvae", problem, state, options, n_steps)
