"""NumPy reference runner with the signature of the Numba kernels (``backend="numpy"``).

It evaluates the readable :mod:`linvae.objectives` losses and gradients, vectorized over the
config axis, and applies the same optimizer update and stopping rules as
:mod:`linvae.kernels.cpu`.  It exists to check the kernels and to run without compilation.
"""
import numpy as np

from .. import objectives

__all__ = ["run_reference", "unpack"]


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


def loss_grad(kind, Z, theta, hyper, dims, learn):
    """Loss (B,) and packed gradient (B, P) from the objectives module."""
    blocks = unpack(kind, theta, dims)
    if kind == "cvae":
        loss, grads = objectives.cvae_whitened_loss_grad(
            Z, *blocks, hyper[:, 0], hyper[:, 1], hyper[:, 2], learn_sigma=bool(learn[0]))
    else:
        loss, grads = objectives.mhvae_whitened_loss_grad(
            Z, *blocks, hyper[:, 0], hyper[:, 1], hyper[:, 2], hyper[:, 3],
            learn_sigma1=bool(learn[0]), learn_sigma2=bool(learn[1]))
    return loss, np.concatenate([g.reshape(theta.shape[0], -1) for g in grads], axis=1)


def run_reference(kind, Z, theta, grad, m, v, hyper, lr, dims, learn, adam, b1, b2, eps, clip, tol,
                  gtol, lr_decay, n_steps, t, prev_loss, loss_out, gnorm_out, status, adapt=0.0,
                  parallel=None):
    """Same contract as :func:`linvae.kernels.cpu.run_cvae` / ``run_mhvae`` (``kind`` first)."""
    for _ in range(int(n_steps)):
        idx = np.flatnonzero(status == 0)
        if idx.size == 0:
            return
        loss, g = loss_grad(kind, Z, theta[idx], hyper[idx], dims, learn)
        gn = np.sqrt(np.sum(g * g, axis=1))
        loss_out[idx], gnorm_out[idx] = loss, gn
        grad[idx] = g
        bad = ~(np.isfinite(loss) & np.isfinite(gn))
        scale = np.maximum(1.0, np.abs(loss))
        done = ~bad & (np.abs(prev_loss[idx] - loss) <= tol * scale) & (gn <= gtol * scale)
        status[idx[bad]] = 2
        status[idx[done]] = 1
        go = ~bad & ~done
        idx, g, gn, loss = idx[go], g[go], gn[go], loss[go]
        if adapt > 0 and not adam:
            lr[idx] *= np.where(loss > prev_loss[idx], 0.5, 1.0 + adapt)
        prev_loss[idx] = loss
        t[idx] += 1
        lr_t = (lr[idx] / (1.0 + lr_decay * t[idx]))[:, None]
        if clip > 0:
            g = g * np.where(gn > clip, clip / np.where(gn > 0, gn, 1.0), 1.0)[:, None]
        if adam:
            tt = t[idx][:, None].astype(float)
            m[idx] = b1 * m[idx] + (1 - b1) * g
            v[idx] = b2 * v[idx] + (1 - b2) * g * g
            theta[idx] -= lr_t * (m[idx] / (1 - b1**tt)) / (np.sqrt(v[idx] / (1 - b2**tt)) + eps)
        else:
            theta[idx] -= lr_t * g
