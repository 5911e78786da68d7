"""Array-generic batched runner with the signature of the Numba kernels.

It evaluates the readable :mod:`linvae.objectives` losses and gradients, vectorized over the
config axis, and applies the same optimizer update and stopping rules as
:mod:`linvae.kernels.cpu`.  With NumPy arrays it is ``backend="numpy"`` (the reference the
kernels are tested against); with CuPy arrays and a fused update it is the GPU backend
(:mod:`linvae.kernels.gpu`).
"""
import numpy as np

from .. import objectives

__all__ = ["run_reference", "run_batched", "unpack", "loss_grad", "update_numpy"]


def unpack(kind, theta, dims):
    """Views of the packed parameter blocks with a leading config axis."""
    B = theta.shape[0]
    if kind == "cvae":
        d, k, r, q = (int(x) for x in dims)
        shapes = [(d, k), (k, r), (k, q), (d, q), (k,)]
    else:
        d, k1, r, k2 = (int(x) for x in dims)
        shapes = [(d, k1), (k1, r), (k1, k2), (k2, k1), (k1,), (k2,)]
    out, o = [], 0
    for shape in shapes:
        size = int(np.prod(shape))
        out.append(theta[:, o:o + size].reshape((B,) + shape))
        o += size
    return out


def loss_grad(kind, Z, theta, hyper, dims, learn, xp=np):
    """Loss (B,) and packed gradient (B, P) from the objectives module."""
    blocks = unpack(kind, theta, dims)
    if kind == "cvae":
        loss, grads = objectives.cvae_whitened_loss_grad(
            Z, *blocks, hyper[:, 0], hyper[:, 1], hyper[:, 2], learn_sigma=bool(learn[0]), xp=xp)
    else:
        loss, grads = objectives.mhvae_whitened_loss_grad(
            Z, *blocks, hyper[:, 0], hyper[:, 1], hyper[:, 2], hyper[:, 3],
            learn_sigma1=bool(learn[0]), learn_sigma2=bool(learn[1]), xp=xp)
    return loss, xp.concatenate([g.reshape(theta.shape[0], -1) for g in grads], axis=1)


def update_numpy(theta, g, m, v, lr_t, t, adam, b1, b2, eps, xp=np):
    """Optimizer update of the rows ``theta`` (B', P) in place of the caller's copies.

    Returns the new ``(theta, m, v)``.  ``lr_t`` and ``t`` have shape (B', 1).
    """
    if not adam:
        return theta - lr_t * g, m, v
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    return theta - lr_t * (m / (1 - b1**t)) / (xp.sqrt(v / (1 - b2**t)) + eps), m, v


def run_batched(kind, Z, theta, grad, m, v, hyper, lr, dims, learn, adam, b1, b2, eps, clip, tol,
                gtol, lr_decay, n_steps, t, prev_loss, loss_out, gnorm_out, status, adapt=0.0,
                parallel=None, xp=np, update=update_numpy):
    """Same contract as :func:`linvae.kernels.cpu.run_cvae` / ``run_mhvae`` (``kind`` first).

    ``xp`` is the array module of every array argument; ``update`` applies the optimizer step.
    """
    for _ in range(int(n_steps)):
        idx = xp.flatnonzero(status == 0)
        if idx.size == 0:
            return
        loss, g = loss_grad(kind, Z, theta[idx], hyper[idx], dims, learn, xp=xp)
        gn = xp.sqrt(xp.sum(g * g, axis=1))
        loss_out[idx], gnorm_out[idx] = loss, gn
        grad[idx] = g
        bad = ~(xp.isfinite(loss) & xp.isfinite(gn))
        scale = xp.maximum(1.0, xp.abs(loss))
        done = ~bad & (xp.abs(prev_loss[idx] - loss) <= tol * scale) & (gn <= gtol * scale)
        status[idx[bad]] = 2
        status[idx[done]] = 1
        go = ~bad & ~done
        idx, g, gn, loss = idx[go], g[go], gn[go], loss[go]
        if adapt > 0 and not adam:
            lr[idx] *= xp.where(loss > prev_loss[idx], 0.5, 1.0 + adapt)
        prev_loss[idx] = loss
        t[idx] += 1
        lr_t = (lr[idx] / (1.0 + lr_decay * t[idx]))[:, None]
        if clip > 0:
            g = g * xp.where(gn > clip, clip / xp.where(gn > 0, gn, 1.0), 1.0)[:, None]
        tt = t[idx][:, None].astype(theta.dtype)
        theta[idx], m[idx], v[idx] = update(theta[idx], g, m[idx], v[idx], lr_t, tt, adam, b1, b2, eps, xp=xp)


def run_reference(kind, *args, **kwargs):
    """NumPy reference runner (``backend="numpy"``)."""
    return run_batched(kind, *args, xp=np, **kwargs)
