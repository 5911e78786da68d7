"""Array kernels: the NumPy backend (``backend="numpy"``) and the engine of the CuPy backend.

The entries :func:`train_vae` and :func:`train_mhvae` implement the contract of
:mod:`linvae.kernels.contract` with whole-batch array code: the readable
:mod:`linvae.objectives` losses and gradients, vectorized over the configuration axis, the
rules of :func:`~linvae.kernels.contract.make_rules` on arrays, and an optimizer update
(:func:`update_numpy` here, a fused CuPy kernel in :mod:`linvae.kernels.gpu`). With NumPy arrays
this is ``backend="numpy"``; with CuPy arrays it is the GPU backend.
"""
import numpy as np

from .. import _config, objectives
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
        loss, grads = objectives.vae_family_whitened_loss_grad(
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

    ``update`` applies the optimizer step (:func:`update_numpy`, which returns new arrays, or
    the fused CuPy update, which writes its ``params, m, v`` arguments in place and so gets
    copies: an update with ``in_place = True`` does).

    Every step evaluates all B configurations and writes the new values only into the rows
    that are still running (masked copies, never a compaction): the loop asks the device
    nothing, so a CuPy step is a stream of kernel launches with no host synchronisation. The
    stopped rows' values are computed and discarded (a diverged row's NaNs stay in its own row:
    nothing mixes rows). Whether any row still runs is asked every step on NumPy and every
    ``_config.ARRAY_SYNC_EVERY`` steps on CuPy; a stopped row never changes, so this decides only
    when the loop returns, not its result.
    """
    rules = _rules(xp)
    o = options
    in_place = getattr(update, "in_place", False)
    check_every = 1 if xp is np else _config.ARRAY_SYNC_EVERY

    def put(dst, src, mask):                 # dst[mask] = src, without a compaction (no host sync on CuPy)
        dst[...] = xp.where(mask, src, dst)

    with np.errstate(all="ignore"):          # stopped (e.g. diverged) rows may overflow; they are masked
        for i in range(int(n_steps)):
            run = state.status == RUNNING
            if i % check_every == 0 and not bool(run.any()):
                return
            loss, g = loss_grad(family, problem.Z, state.params, problem.hyper, problem.dims, problem.learn, xp=xp)
            gn = xp.sqrt(xp.sum(g * g, axis=1))
            put(state.loss, loss, run)
            put(state.grad_norm, gn, run)
            put(state.grad, g, run[:, None])
            diverged, converged = rules.stopped(loss, gn, state.prev_loss, o.tol, o.gtol)
            diverged, converged = xp.logical_and(run, diverged), xp.logical_and(run, converged)
            put(state.status, DIVERGED, diverged)
            put(state.status, CONVERGED, converged)
            go = xp.logical_and(run, xp.logical_not(xp.logical_or(diverged, converged)))
            if o.momentum > 0 and not o.adam:
                put(state.adam_m, state.adam_m * rules.velocity_kept(loss, state.prev_loss)[:, None], go[:, None])
            if o.adapt > 0 and not o.adam:
                put(state.lr, rules.bold_driver(state.lr, loss, state.prev_loss, o.adapt), go)
            put(state.prev_loss, loss, go)
            state.step[...] += go
            lr_t = rules.decayed_lr(state.lr, o.lr_decay, state.step)[:, None]
            if o.clip > 0:
                g = g * rules.clip_factor(gn, o.clip)[:, None]
            tt = state.step[:, None].astype(state.params.dtype)
            params, m, v = (state.params, state.adam_m, state.adam_v)
            if in_place:
                params, m, v = params.copy(), m.copy(), v.copy()
            params, m, v = update(params, g, m, v, lr_t, tt, o.adam, o.b1, o.b2, o.eps, xp=xp, momentum=o.momentum)
            rows = go[:, None]
            put(state.params, params, rows)
            put(state.adam_m, m, rows)
            put(state.adam_v, v, rows)


def train_vae(problem, state, options, n_steps, *, parallel=None):
    """NumPy twin of :func:`linvae.kernels.cpu.train_vae` (``parallel`` is ignored)."""
    train_batched("vae", problem, state, options, n_steps)


def train_mhvae(problem, state, options, n_steps, *, parallel=None):
    """NumPy twin of :func:`linvae.kernels.cpu.train_mhvae` (``parallel`` is ignored)."""
    train_batched("mhvae", problem, state, options, n_steps)
