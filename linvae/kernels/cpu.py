"""Hand-written Numba kernels: fused loss + gradient + optimizer update on moment matrices.

Every kernel trains a batch of B configurations at once.  The parameters of configuration b
are packed into one flat row ``theta[b]`` (layouts below); optimizer state ``m``, ``v`` and the
gradient buffer share that layout, so the optimizer update is one loop over a flat vector for
every model.  Each call runs up to ``n_steps`` steps per configuration, stopping a
configuration early when it converges or diverges, so the Python driver only intervenes every
``n_steps`` steps (history, progress bar).  The loop over configurations is a ``prange``; the
parallel variant is used when B is at least the number of threads, otherwise the serial
variant lets the BLAS-sized products inside one configuration use the cores.

Layouts (row-major blocks, in this order)
-----------------------------------------
VAE/CVAE family (``dims = (d, k, r, q)``):  U (d×k), V (k×r), A (k×q), C (d×q), s (k)
MHVAE (``dims = (d, k1, r, k2)``):          U1 (d×k1), V1 (k1×r), U2 (k1×k2), W2 (k2×k1),
                                            s1 (k1), s2 (k2)

Hyperparameter rows
-------------------
VAE/CVAE: ``hyper[b] = (β, c², η_dec²)``; MHVAE: ``hyper[b] = (β₁, β₂, c², η_dec²)``.

Status codes: 0 running, 1 converged, 2 diverged (non-finite loss or gradient).

Notes
-----
The gradients are those of :func:`linvae.objectives.cvae_whitened_loss_grad` and
:func:`linvae.objectives.mhvae_whitened_loss_grad` (SPEC §2); the tests check the kernels
against those NumPy references to 1e-10.
"""
import math
import types

import numpy as np
from numba import njit, prange

from .. import _config

__all__ = ["cvae_layout", "mhvae_layout", "run_cvae", "run_mhvae", "RUNNING", "CONVERGED", "DIVERGED"]

RUNNING, CONVERGED, DIVERGED = 0, 1, 2

_JIT = dict(cache=True, fastmath=_config.FASTMATH, nogil=True)


def cvae_layout(d, k, r, q):
    """Offsets of U, V, A, C, s and the total size P for the VAE/CVAE family."""
    sizes = [d * k, k * r, k * q, d * q, k]
    off = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    return off, int(off[-1])


def mhvae_layout(d, k1, r, k2):
    """Offsets of U1, V1, U2, W2, s1, s2 and the total size P for the MHVAE."""
    sizes = [d * k1, k1 * r, k1 * k2, k2 * k1, k1, k2]
    off = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    return off, int(off[-1])


@njit(**_JIT)
def workspace_size(kind, dims):
    """Floats of scratch one configuration needs: ``R``, ``Q`` and a d×k product for the
    VAE/CVAE (``kind`` 0, :func:`_cvae_loss_grad`); ``R`` and a k₁×r product for the MHVAE
    (:func:`_mhvae_loss_grad`)."""
    if kind == 0:
        return dims[0] * dims[2] + dims[0] * dims[3] + dims[0] * dims[1]
    return dims[0] * dims[2] + dims[1] * dims[2]


@njit(**_JIT)
def _residual(U, V, Z, R):
    """``R = UV − Z`` written in place (BLAS product, then one pass); returns ``‖R‖²``."""
    np.dot(U, V, R)
    rsq = 0.0
    for i in range(R.shape[0]):
        for c in range(R.shape[1]):
            x = R[i, c] - Z[i, c]
            R[i, c] = x
            rsq += x * x
    return rsq


@njit(**_JIT)
def _cvae_loss_grad(Z, th, g, hyper, dims, learn, ws):
    """Loss and gradient (written into ``g``) of one VAE/CVAE configuration.

    ``ws`` is scratch space of :func:`workspace_size` floats: the residuals ``R = UV − Z``
    and ``Q = UA + C`` and one d×k product live there, so a step allocates nothing and the three
    matrix products go straight to BLAS with their outputs in place.
    """
    d, k, r, q = dims[0], dims[1], dims[2], dims[3]
    beta, c2, ed2 = hyper[0], hyper[1], hyper[2]
    bc = beta * c2
    o1 = d * k
    o2 = o1 + k * r
    o3 = o2 + k * q
    o4 = o3 + d * q
    U = th[:o1].reshape((d, k))
    V = th[o1:o2].reshape((k, r))
    s = th[o4:o4 + k]
    gU = g[:o1].reshape((d, k))
    gV = g[o1:o2].reshape((k, r))
    gs = g[o4:o4 + k]
    R = ws[:d * r].reshape((d, r))
    loss = _residual(U, V, Z, R)
    np.dot(R, V.T, gU)                    # ½ ∂/∂U of ‖UV − Z‖²; doubled with the σ term below
    np.dot(U.T, R, gV)
    for j in range(k):
        for c in range(r):
            vjc = V[j, c]
            loss += bc * vjc * vjc
            gV[j, c] = 2.0 * gV[j, c] + (2.0 * bc) * vjc
    if q > 0:
        A = th[o2:o3].reshape((k, q))
        C = th[o3:o4].reshape((d, q))
        gA = g[o2:o3].reshape((k, q))
        gC = g[o3:o4].reshape((d, q))
        Q = ws[d * r:d * r + d * q].reshape((d, q))
        T = ws[d * r + d * q:d * r + d * q + d * k].reshape((d, k))
        np.dot(U, A, Q)
        for i in range(d):
            for c in range(q):
                x = Q[i, c] + C[i, c]
                Q[i, c] = x
                loss += x * x
                gC[i, c] = 2.0 * x
        np.dot(Q, A.T, T)
        for i in range(d):
            for j in range(k):
                gU[i, j] += T[i, j]
        np.dot(U.T, Q, gA)
        for j in range(k):
            for c in range(q):
                ajc = A[j, c]
                loss += bc * ajc * ajc
                gA[j, c] = 2.0 * gA[j, c] + (2.0 * bc) * ajc
    for j in range(k):
        var = math.exp(2.0 * s[j])
        col = 0.0
        for i in range(d):
            u = U[i, j]
            col += u * u
            gU[i, j] = 2.0 * gU[i, j] + (2.0 * var) * u
        loss += var * col + bc * var - 2.0 * beta * ed2 * s[j]
        gs[j] = (2.0 * var * (col + bc) - 2.0 * beta * ed2) if learn[0] else 0.0
    return loss


@njit(**_JIT)
def _mhvae_loss_grad(Z, th, g, hyper, dims, learn, ws):
    """Loss and gradient (written into ``g``) of one MHVAE configuration.

    The d × r residual ``R = U₁V₁ − Z`` and a k₁ × r product live in the scratch ``ws``
    (``d·r + k₁·r`` floats) and the two large products are written in place; the k₁ × k₁ and
    k₁ × k₂ algebra of the second latent is small and stays in NumPy expressions.
    """
    d, k1, r, k2 = dims[0], dims[1], dims[2], dims[3]
    beta1, beta2, c2, ed2 = hyper[0], hyper[1], hyper[2], hyper[3]
    b2c = beta2 * c2
    o1 = d * k1
    o2 = o1 + k1 * r
    o3 = o2 + k1 * k2
    o4 = o3 + k2 * k1
    o5 = o4 + k1
    U1 = th[:o1].reshape((d, k1))
    V1 = th[o1:o2].reshape((k1, r))
    U2 = th[o2:o3].reshape((k1, k2))
    W2 = th[o3:o4].reshape((k2, k1))
    s1 = th[o4:o5]
    s2 = th[o5:o5 + k2]
    gU1 = g[:o1].reshape((d, k1))
    gV1 = g[o1:o2].reshape((k1, r))
    gU2 = g[o2:o3].reshape((k1, k2))
    gW2 = g[o3:o4].reshape((k2, k1))
    gs1 = g[o4:o5]
    gs2 = g[o5:o5 + k2]
    v1 = np.exp(2.0 * s1)
    v2 = np.exp(2.0 * s2)
    R = ws[:d * r].reshape((d, r))
    T = ws[d * r:d * r + k1 * r].reshape((k1, r))
    rsq = _residual(U1, V1, Z, R)
    M = U2 @ W2
    for i in range(k1):
        M[i, i] -= 1.0
    G = V1 @ V1.T
    for i in range(k1):
        G[i, i] += v1[i]
    MG = M @ G
    W2G = W2 @ G
    loss = rsq + beta1 * np.sum(MG * M) + b2c * np.sum(W2G * W2)
    np.dot(R, V1.T, gU1)
    np.dot(U1.T, R, gV1)
    np.dot(beta1 * (M.T @ M) + b2c * (W2.T @ W2), V1, T)
    for i in range(d):
        for j in range(k1):
            gU1[i, j] *= 2.0
    for j in range(k1):
        for c in range(r):
            gV1[j, c] = 2.0 * (gV1[j, c] + T[j, c])
    gU2[:, :] = (2.0 * beta1) * (MG @ W2.T)
    gW2[:, :] = (2.0 * beta1) * (U2.T @ MG) + (2.0 * b2c) * W2G
    for j in range(k1):
        col = 0.0
        mcol = 0.0
        for i in range(d):
            col += U1[i, j] * U1[i, j]
            gU1[i, j] += 2.0 * v1[j] * U1[i, j]
        for i in range(k1):
            mcol += M[i, j] * M[i, j]
        wcol = 0.0
        for i in range(k2):
            wcol += W2[i, j] * W2[i, j]
        loss += v1[j] * col
        if learn[0]:
            loss -= 2.0 * beta1 * ed2 * s1[j]
            gs1[j] = 2.0 * v1[j] * (col + beta1 * mcol + b2c * wcol) - 2.0 * beta1 * ed2
        else:
            gs1[j] = 0.0
    for j in range(k2):
        col = 0.0
        for i in range(k1):
            col += U2[i, j] * U2[i, j]
            gU2[i, j] += 2.0 * beta1 * v2[j] * U2[i, j]
        loss += beta1 * v2[j] * col + b2c * v2[j] - 2.0 * beta2 * ed2 * s2[j]
        gs2[j] = (2.0 * v2[j] * (beta1 * col + b2c) - 2.0 * beta2 * ed2) if learn[1] else 0.0
    return loss


@njit(**_JIT)
def _norm(g):
    """Euclidean norm of a flat vector without a temporary."""
    acc = 0.0
    for i in range(g.shape[0]):
        acc += g[i] * g[i]
    return math.sqrt(acc)


@njit(**_JIT)
def _step(th, g, m, v, t, lr, adam, b1, b2, eps, clip, gnorm):
    """One optimizer update of a flat parameter vector (GD or Adam, optional norm clipping)."""
    scale = 1.0
    if clip > 0.0 and gnorm > clip:
        scale = clip / gnorm
    if adam:
        # bias corrections folded into two scalars; locals instead of re-reads let LLVM
        # vectorize the loop (its cost is the element-wise sqrt and division)
        a = lr / (1.0 - b1 ** t)
        inv_c2 = 1.0 / (1.0 - b2 ** t)
        ob1 = 1.0 - b1
        ob2 = 1.0 - b2
        for i in range(th.shape[0]):
            gi = g[i] * scale
            mi = b1 * m[i] + ob1 * gi
            vi = b2 * v[i] + ob2 * gi * gi
            m[i] = mi
            v[i] = vi
            th[i] -= a * mi / (math.sqrt(vi * inv_c2) + eps)
    else:
        for i in range(th.shape[0]):
            th[i] -= lr * scale * g[i]


@njit(**_JIT)
def _advance(th, g, m, v, loss, b, lr, adam, b1, b2, eps, clip, tol, gtol, lr_decay, t, prev_loss, loss_out,
             gnorm_out, status, adapt):
    """Record ``loss`` of config ``b``, test convergence / divergence, then take one step.

    Returns False when the config stopped (its ``status`` set to 1 or 2)."""
    gn = _norm(g)
    loss_out[b] = loss
    gnorm_out[b] = gn
    if not (math.isfinite(loss) and math.isfinite(gn)):
        status[b] = 2
        return False
    scale = max(1.0, abs(loss))
    if abs(prev_loss[b] - loss) <= tol * scale and gn <= gtol * scale:
        status[b] = 1
        return False
    if adapt > 0.0 and not adam:
        # "bold driver": halve the step after a loss increase, grow it slowly otherwise
        if loss > prev_loss[b]:
            lr[b] *= 0.5
        else:
            lr[b] *= 1.0 + adapt
    prev_loss[b] = loss
    t[b] += 1
    lr_t = lr[b] / (1.0 + lr_decay * t[b])
    _step(th, g, m, v, t[b], lr_t, adam, b1, b2, eps, clip, gn)
    return True


# One loop per model kind (not one loop branching on the kind), so that a VAE fit compiles only
# the VAE/CVAE loss and an MHVAE fit only the MHVAE loss; the loops differ in that one call.

def _run_cvae_impl(Z, theta, grad, m, v, hyper, lr, dims, learn, adam, b1, b2, eps, clip, tol,
                   gtol, lr_decay, n_steps, t, prev_loss, loss_out, gnorm_out, status, adapt):
    n_ws = workspace_size(0, dims)
    for b in prange(theta.shape[0]):
        if status[b] != 0:
            continue
        th = theta[b]
        g = grad[b]
        ws = np.empty(n_ws, dtype=th.dtype)
        for _ in range(n_steps):
            loss = _cvae_loss_grad(Z, th, g, hyper[b], dims, learn, ws)
            if not _advance(th, g, m[b], v[b], loss, b, lr, adam, b1, b2, eps, clip, tol, gtol, lr_decay, t,
                            prev_loss, loss_out, gnorm_out, status, adapt):
                break


def _run_mhvae_impl(Z, theta, grad, m, v, hyper, lr, dims, learn, adam, b1, b2, eps, clip, tol,
                    gtol, lr_decay, n_steps, t, prev_loss, loss_out, gnorm_out, status, adapt):
    n_ws = workspace_size(1, dims)
    for b in prange(theta.shape[0]):
        if status[b] != 0:
            continue
        th = theta[b]
        g = grad[b]
        ws = np.empty(n_ws, dtype=th.dtype)
        for _ in range(n_steps):
            loss = _mhvae_loss_grad(Z, th, g, hyper[b], dims, learn, ws)
            if not _advance(th, g, m[b], v[b], loss, b, lr, adam, b1, b2, eps, clip, tol, gtol, lr_decay, t,
                            prev_loss, loss_out, gnorm_out, status, adapt):
                break


def _clone(fn, name):
    """A copy of ``fn`` under another name.

    Numba's on-disk cache is keyed by the function's name and signature, not by its compile
    options, so a serial and a parallel dispatcher of the *same* function would load each
    other's machine code; a renamed copy gets its own cache entry.
    """
    new = types.FunctionType(fn.__code__, fn.__globals__, name, fn.__defaults__, fn.__closure__)
    new.__qualname__ = name
    return new


# Serial and parallel variants per model kind. ``njit`` without signatures compiles lazily: a
# process compiles (or loads from the on-disk cache) only the kind, variant and dtype it calls.
_KERNELS = {
    ("cvae", False): njit(**_JIT)(_run_cvae_impl),
    ("cvae", True): njit(parallel=True, **_JIT)(_clone(_run_cvae_impl, "_run_cvae_impl_parallel")),
    ("mhvae", False): njit(**_JIT)(_run_mhvae_impl),
    ("mhvae", True): njit(parallel=True, **_JIT)(_clone(_run_mhvae_impl, "_run_mhvae_impl_parallel")),
}


def _use_parallel(B, work):
    """``prange`` over configurations when there are enough of them, each is small (see
    ``_config.PARALLEL_MAX_WORK``) and all of them together are large enough to repay the
    parallel variant's one-time compilation (``_config.PARALLEL_MIN_TOTAL_WORK``); otherwise
    configurations run in turn with threaded BLAS."""
    from numba import get_num_threads

    return (_config.PARALLEL and B >= get_num_threads() > 1 and work <= _config.PARALLEL_MAX_WORK
            and B * work >= _config.PARALLEL_MIN_TOTAL_WORK)


def _run(kind, Z, theta, grad, m, v, hyper, lr, dims, learn, adam, b1, b2, eps, clip, tol, gtol,
         lr_decay, n_steps, t, prev_loss, loss_out, gnorm_out, status, adapt=0.0, parallel=None):
    if parallel is None:
        work = float(dims[0]) * float(dims[1]) * (float(dims[2]) + float(dims[3]))
        parallel = _use_parallel(theta.shape[0], work)
    fn = _KERNELS[kind, bool(parallel)]
    fn(Z, theta, grad, m, v, hyper, lr, dims, learn, bool(adam), float(b1), float(b2), float(eps),
       float(clip), float(tol), float(gtol), float(lr_decay), int(n_steps), t, prev_loss, loss_out,
       gnorm_out, status, float(adapt))


def run_cvae(*args, **kwargs):
    """Run up to ``n_steps`` fused steps of the VAE/CVAE family for every active config.

    Parameters
    ----------
    Z : ndarray (d, r)
    theta, grad, m, v : ndarray (B, P)
        Packed parameters (updated in place), gradient buffer, Adam moments.
    hyper : ndarray (B, 3)
        (β, c², η_dec²) per config.
    lr : ndarray (B,)
        Step sizes; updated in place when ``adapt > 0`` (GD only).
    dims : int64 array (4,)
        (d, k, r, q).
    learn : bool array (1,)
        Whether σ is learned.
    adam : bool
    b1, b2, eps : float
        Adam constants.
    clip : float
        Clip the gradient to this global norm (0: off).
    tol, gtol : float
        Stop a config when its relative loss change ≤ tol and gradient norm ≤ gtol·max(1, |L|).
    lr_decay : float
        ``lr_t = lr / (1 + lr_decay·t)``.
    n_steps : int
    t : int64 array (B,)
        Steps taken so far (Adam bias correction).
    prev_loss, loss_out, gnorm_out : float arrays (B,)
    status : int64 array (B,)
        0 running, 1 converged, 2 diverged; configs with status ≠ 0 are skipped.
    adapt : float
        GD step adaptation ("bold driver"): after a step that increased the loss the step size
        is halved, otherwise multiplied by ``1 + adapt`` (0: fixed step).
    parallel : bool, optional
        Force the parallel or serial variant (default: see :func:`_use_parallel`).

    Notes
    -----
    SPEC §2 whitened VAE/CVAE loss (Thm 1, Thm 2, Thm 4 settings).
    """
    _run("cvae", *args, **kwargs)


def run_mhvae(*args, **kwargs):
    """MHVAE twin of :func:`run_cvae` (``hyper[b] = (β₁, β₂, c², η_dec²)``, ``dims = (d, k1, r, k2)``,
    ``learn = (learn σ₁, learn σ₂)``).

    Notes
    -----
    SPEC §2 MHVAE loss (Thm 3, Thm 5 and the both-learned case, which has no closed form).
    """
    _run("mhvae", *args, **kwargs)


# ---------------------------------------------------------------------------------------------
# Data-space minibatch training (the paper's scripts: Adam, batch 128, reparameterized samples)
# ---------------------------------------------------------------------------------------------
#
# Layout (``dims = (dx, dy, k)``; the VAE is the case dx = 0 with y the data):
#     W1 (k×dx), W2 (k×dy), U1 (dy×k), U2 (dy×dx), s (k)
# Encoder mean m = W₁x + W₂y, sample z = m + σ⊙ε, decoder mean U₁z + U₂x, loss per example
#     ‖U₁z + U₂x − y‖² + βc²(‖m‖² + Σσ²) − βη_dec² Σ log σ²,
# an unbiased estimate of the SPEC §2 loss (its expectation over ε is the exact loss).


def minibatch_layout(dx, dy, k):
    """Offsets of W1, W2, U1, U2, s and the total size for the minibatch kernel."""
    sizes = [k * dx, k * dy, dy * k, dy * dx, k]
    off = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    return off, int(off[-1])


@njit(**_JIT)
def minibatch_workspace_size(batch, dx, dy, k):
    """Floats of scratch :func:`_minibatch_loss_grad` needs for batches of up to ``batch`` rows."""
    return batch * (4 * k + 2 * dy)


@njit(**_JIT)
def _minibatch_loss_grad(Xb, Yb, Eb, th, g, hyper, dims, learn, ws):
    """Stochastic loss and gradient of one VAE/CVAE config on one minibatch.

    ``Xb``, ``Yb``, ``Eb`` are contiguous row blocks; every product is written in place (into the
    gradient blocks of ``g`` or the scratch ``ws`` of :func:`minibatch_workspace_size` floats), so
    a step allocates nothing.
    """
    dx, dy, k = dims[0], dims[1], dims[2]
    beta, c2, ed2 = hyper[0], hyper[1], hyper[2]
    bc = beta * c2
    n = Yb.shape[0]
    o1 = k * dx
    o2 = o1 + k * dy
    o3 = o2 + dy * k
    o4 = o3 + dy * dx
    W2 = th[o1:o2].reshape((k, dy))
    U1 = th[o2:o3].reshape((dy, k))
    s = th[o4:o4 + k]
    M = ws[:n * k].reshape((n, k))
    Zs = ws[n * k:2 * n * k].reshape((n, k))
    GZ = ws[2 * n * k:3 * n * k].reshape((n, k))
    G = ws[3 * n * k:4 * n * k].reshape((n, k))
    R = ws[4 * n * k:4 * n * k + n * dy].reshape((n, dy))
    T = ws[4 * n * k + n * dy:4 * n * k + 2 * n * dy].reshape((n, dy))
    np.dot(Yb, W2.T, M)
    if dx > 0:
        W1 = th[:o1].reshape((k, dx))
        np.dot(Xb, W1.T, Zs)
        for i in range(n):
            for j in range(k):
                M[i, j] += Zs[i, j]
    msq = 0.0
    for i in range(n):
        for j in range(k):
            m = M[i, j]
            msq += m * m
            Zs[i, j] = m + Eb[i, j] * math.exp(s[j])
    np.dot(Zs, U1.T, R)
    if dx > 0:
        U2 = th[o3:o4].reshape((dy, dx))
        np.dot(Xb, U2.T, T)
    rsq = 0.0
    for i in range(n):
        for c in range(dy):
            x = R[i, c] - Yb[i, c]
            if dx > 0:
                x += T[i, c]
            R[i, c] = x
            rsq += x * x
    inv = 1.0 / n
    loss = (rsq + bc * msq) * inv
    np.dot(R, U1, GZ)
    for i in range(n):
        for j in range(k):
            G[i, j] = 2.0 * inv * (GZ[i, j] + bc * M[i, j])      # ∂L/∂m per example
    gW2 = g[o1:o2].reshape((k, dy))
    gU1 = g[o2:o3].reshape((dy, k))
    np.dot(G.T, Yb, gW2)
    np.dot(R.T, Zs, gU1)
    for c in range(dy):
        for j in range(k):
            gU1[c, j] *= 2.0 * inv
    if dx > 0:
        gW1 = g[:o1].reshape((k, dx))
        gU2 = g[o3:o4].reshape((dy, dx))
        np.dot(G.T, Xb, gW1)
        np.dot(R.T, Xb, gU2)
        for c in range(dy):
            for a in range(dx):
                gU2[c, a] *= 2.0 * inv
    for j in range(k):
        acc = 0.0
        for i in range(n):
            acc += GZ[i, j] * Eb[i, j]
        sig = math.exp(s[j])
        var = sig * sig
        loss += bc * var - 2.0 * beta * ed2 * s[j]
        g[o4 + j] = (2.0 * inv * acc * sig + 2.0 * bc * var - 2.0 * beta * ed2) if learn[0] else 0.0
    return loss


def _minibatch_epoch_impl(X, Y, noise, perm, batch, theta, grad, m, v, hyper, lr, dims, learn, b1, b2,
                          eps, clip, t, epoch_loss, status):
    B = theta.shape[0]
    N = perm.shape[0]
    nb = (N + batch - 1) // batch
    # one gather per epoch (shared by every config); the batches are then contiguous row blocks
    Xp = X[perm]
    Yp = Y[perm]
    Ep = noise[perm]
    n_ws = minibatch_workspace_size(batch, dims[0], dims[1], dims[2])
    for b in prange(B):
        if status[b] != 0:
            continue
        th = theta[b]
        g = grad[b]
        ws = np.empty(n_ws, dtype=th.dtype)
        total = 0.0
        for ib in range(nb):
            lo = ib * batch
            hi = min(N, lo + batch)
            loss = _minibatch_loss_grad(Xp[lo:hi], Yp[lo:hi], Ep[lo:hi], th, g, hyper[b], dims, learn, ws)
            gn = _norm(g)
            if not (math.isfinite(loss) and math.isfinite(gn)):
                status[b] = 2
                break
            total += loss * (hi - lo)
            t[b] += 1
            _step(th, g, m[b], v[b], t[b], lr[b], True, b1, b2, eps, clip, gn)
        epoch_loss[b] = total / N


_mb_serial = njit(**_JIT)(_minibatch_epoch_impl)
_mb_parallel = njit(parallel=True, **_JIT)(_clone(_minibatch_epoch_impl, "_minibatch_epoch_impl_parallel"))


def minibatch_epoch(X, Y, noise, perm, batch, theta, grad, m, v, hyper, lr, dims, learn, b1, b2, eps,
                    clip, t, epoch_loss, status, parallel=None):
    """One epoch of minibatch Adam on raw data for every active config (shared batches and noise).

    Parameters
    ----------
    X : ndarray (N, dx)
        Condition (an (N, 0) array for the VAE).
    Y : ndarray (N, dy)
        Target (the data itself for the VAE).
    noise : ndarray (N, k)
        Standard normal ε of this epoch (drawn by the caller from a seeded generator).
    perm : int64 array (N,)
        Example order of this epoch.
    batch : int
    theta, grad, m, v : (B, P)
        Packed parameters (see :func:`minibatch_layout`), gradient buffer, Adam moments.
    hyper : (B, 3)
        (β, c², η_dec²).
    lr : (B,)
    dims : int64 array (dx, dy, k)
    learn : bool array (1,)
    t : int64 (B,)
        Adam step counters.
    epoch_loss : (B,)
        Mean stochastic loss over the epoch (output).
    status : int64 (B,)
        Set to 2 for a config whose loss or gradient became non-finite.

    Notes
    -----
    The reparameterized estimator of the SPEC §2 loss (Thm 1/2/4 models), as the paper's
    training scripts use it.
    """
    if parallel is None:
        parallel = _use_parallel(theta.shape[0], float(batch) * float(dims[2]) * float(dims[0] + dims[1]))
    fn = _mb_parallel if parallel else _mb_serial
    fn(X, Y, noise, perm, int(batch), theta, grad, m, v, hyper, lr, dims, learn, float(b1), float(b2),
       float(eps), float(clip), t, epoch_loss, status)
