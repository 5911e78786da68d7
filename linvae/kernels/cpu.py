"""Hand-written Numba kernels: fused loss + gradient + optimizer update on moment matrices.

The entries :func:`train_vae` (VAE and CVAE) and :func:`train_mhvae` implement the contract of
:mod:`linvae.kernels.contract`: ``entry(problem, state, options, n_steps, *, parallel=None)``
trains the B configurations of ``state`` in place. The parameters of configuration b are packed
into one flat row ``state.params[b]`` (:data:`~linvae.kernels.contract.LAYOUTS`, whose offsets
come in ``problem.offsets``); the gradient and the Adam moments share that layout, so the
optimizer update is one loop over a flat vector for every model. The stopping and step-size
rules are those of :func:`~linvae.kernels.contract.make_rules`, compiled here for scalars. The
loop over configurations is a ``prange``; the parallel variant is used when B is at least the
number of threads, otherwise the serial variant lets the BLAS-sized products inside one
configuration use the cores.

Notes
-----
The gradients are those of :func:`linvae.objectives.vae_family_whitened_loss_grad` and
:func:`linvae.objectives.mhvae_whitened_loss_grad` (SPEC §2); ``tests/test_kernels.py`` checks
the kernels against an independent dense NumPy loss and gradient and against the array backend.
"""
import math
import types

import numpy as np
from numba import njit, prange

from .. import _config
from ._intrinsics import gemm, matrix
from .contract import CONVERGED, DIVERGED, RUNNING, KernelOptions, make_rules

__all__ = ["train_vae", "train_mhvae", "minibatch_epoch", "RUNNING", "CONVERGED", "DIVERGED"]

_JIT = dict(cache=True, fastmath=_config.FASTMATH, nogil=True)

_rules = make_rules(np)
_INLINE = dict(_JIT, inline="always")

# Compile-time switches of a kernel variant (see :func:`_kernel`): 1 or 0 in a variant's globals,
# -1 here (decided at run time). Numba folds ``_ADAM == 1`` or ``_CONDITIONAL != 0`` against the
# global's value and prunes the branch not taken before type inference, so an Adam fit does not
# compile the GD update, nor a VAE fit the CVAE block; ``_PARALLEL`` says whether the loop's
# configurations run at once (each then allocates its own scratch space, see :func:`_scratch`).
_ADAM = -1
_CONDITIONAL = -1
_PARALLEL = -1
_stopped = njit(**_INLINE)(_rules.stopped)
_bold_driver = njit(**_INLINE)(_rules.bold_driver)
_decayed_lr = njit(**_INLINE)(_rules.decayed_lr)
_velocity_kept = njit(**_INLINE)(_rules.velocity_kept)
_clip_factor = njit(**_INLINE)(_rules.clip_factor)


def workspace_size(family, dims):
    """Floats of scratch one configuration of ``family`` needs: ``R``, ``Q`` and a d×k product
    for ``"vae"`` (VAE/CVAE, :func:`_vae_loss_grad`); ``R``, a k₁×r product, five k₁×k₁ and two
    k₂×k₁ matrices and the two variance vectors for ``"mhvae"`` (:func:`_mhvae_loss_grad`)."""
    if family == "vae":
        return dims[0] * dims[2] + dims[0] * dims[3] + dims[0] * dims[1]
    k1, k2 = dims[1], dims[3]
    return dims[0] * dims[2] + k1 * dims[2] + 5 * k1 * k1 + 2 * k2 * k1 + k1 + k2


@njit(**_INLINE)
def _residual(U, V, Z, R):
    """``R = UV − Z`` written in place (BLAS product, then one pass); returns ``‖R‖²``."""
    gemm(U, V, R)
    rsq = 0.0
    for i in range(R.shape[0]):
        for c in range(R.shape[1]):
            x = R[i, c] - Z[i, c]
            R[i, c] = x
            rsq += x * x
    return rsq


@njit(**_JIT)
def _vae_loss_grad(Z, row, g, hyper, dims, off, learn, ws):
    """Loss and gradient (written into ``g``) of one VAE/CVAE configuration (``off``: the
    ``"vae"`` layout offsets).

    ``ws`` is scratch space of :func:`workspace_size` floats: the residuals ``R = UV − Z``
    and ``Q = UA + C`` and one d×k product live there, so a step allocates nothing and the
    matrix products go straight to BLAS with their outputs in place. The parameter blocks and
    the scratch matrices are views taken with :func:`~linvae.kernels._intrinsics.matrix`, the
    products written with :func:`~linvae.kernels._intrinsics.gemm` (``reshape`` and ``np.dot``
    without the code each compiles around them).
    """
    d, k, r, q = dims[0], dims[1], dims[2], dims[3]
    beta, c2, ed2 = hyper[0], hyper[1], hyper[2]
    bc = beta * c2
    o1, o2, o3, o4 = off[1], off[2], off[3], off[4]
    U = matrix(row, 0, d, k)
    V = matrix(row, o1, k, r)
    s = row[o4:o4 + k]
    gU = matrix(g, 0, d, k)
    gV = matrix(g, o1, k, r)
    gs = g[o4:o4 + k]
    R = matrix(ws, 0, d, r)
    loss = _residual(U, V, Z, R)
    gemm(R, V.T, gU)                    # ½ ∂/∂U of ‖UV − Z‖²; doubled with the σ term below
    gemm(U.T, R, gV)
    # element-wise work over a whole block runs over its flat index (one loop, one index)
    for t in range(k * r):              # βc²‖V‖²; ∂/∂V = 2(UᵀR + βc²V)
        v = row[o1 + t]
        loss += bc * v * v
        g[o1 + t] = 2.0 * g[o1 + t] + (2.0 * bc) * v
    if _CONDITIONAL != 0 and q > 0:
        aQ = d * r                      # scratch: R d×r | Q d×q | T d×k
        aT = aQ + d * q
        A = matrix(row, o2, k, q)
        gA = matrix(g, o2, k, q)
        Q = matrix(ws, aQ, d, q)
        T = matrix(ws, aT, d, k)
        gemm(U, A, Q)
        for t in range(d * q):          # Q = UA + C, ‖Q‖², ∂/∂C = 2Q
            x = ws[aQ + t] + row[o3 + t]
            ws[aQ + t] = x
            loss += x * x
            g[o3 + t] = 2.0 * x
        gemm(Q, A.T, T)
        for t in range(d * k):          # ½ ∂/∂U += QAᵀ
            g[t] += ws[aT + t]
        gemm(U.T, Q, gA)
        for t in range(k * q):          # βc²‖A‖²; ∂/∂A = 2(UᵀQ + βc²A)
            a = row[o2 + t]
            loss += bc * a * a
            g[o2 + t] = 2.0 * g[o2 + t] + (2.0 * bc) * a
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
def _mhvae_loss_grad(Z, row, g, hyper, dims, off, learn, ws):
    """Loss and gradient (written into ``g``) of one MHVAE configuration (``off``: the ``"mhvae"``
    layout offsets).

    Every product is a :func:`~linvae.kernels._intrinsics.gemm` into scratch space (``ws``,
    :func:`workspace_size` floats) with one of the three layouts the VAE kernel uses (C·C, C·Cᵀ,
    Cᵀ·C), views are taken as in :func:`_vae_loss_grad`, and all element-wise
    work is written as loops: NumPy array expressions would each compile their own broadcasting
    and allocation code, which once cost this kernel three quarters of its 16 s compile.
    """
    d, k1, r, k2 = dims[0], dims[1], dims[2], dims[3]
    beta1, beta2, c2, ed2 = hyper[0], hyper[1], hyper[2], hyper[3]
    b2c = beta2 * c2
    o1, o2, o3, o4, o5 = off[1], off[2], off[3], off[4], off[5]
    U1 = matrix(row, 0, d, k1)
    V1 = matrix(row, o1, k1, r)
    U2 = matrix(row, o2, k1, k2)
    W2 = matrix(row, o3, k2, k1)
    s1 = row[o4:o5]
    s2 = row[o5:o5 + k2]
    gU1 = matrix(g, 0, d, k1)
    gV1 = matrix(g, o1, k1, r)
    gU2 = matrix(g, o2, k1, k2)
    gs1 = g[o4:o5]
    gs2 = g[o5:o5 + k2]
    # scratch (offsets into ws): R d×r | T k₁×r | M, G, MG, H, W₂ᵀW₂ k₁×k₁ | W2G, WW k₂×k₁ | σ₁², σ₂²
    kk, wk = k1 * k1, k2 * k1
    aT = d * r
    aM = aT + k1 * r
    aG, aMG, aH, aWtW = aM + kk, aM + 2 * kk, aM + 3 * kk, aM + 4 * kk
    aW2G = aM + 5 * kk
    aWW = aW2G + wk
    av = aWW + wk
    R = matrix(ws, 0, d, r)
    T = matrix(ws, aT, k1, r)
    M = matrix(ws, aM, k1, k1)          # U₂W₂ − I
    G = matrix(ws, aG, k1, k1)          # V₁V₁ᵀ + diag(σ₁²)
    MG = matrix(ws, aMG, k1, k1)
    H = matrix(ws, aH, k1, k1)          # β₁MᵀM + β₂c²W₂ᵀW₂
    WtW = matrix(ws, aWtW, k1, k1)
    W2G = matrix(ws, aW2G, k2, k1)
    WW = matrix(ws, aWW, k2, k1)        # U₂ᵀ(MG), for ∂/∂W₂
    v1 = ws[av:av + k1]
    v2 = ws[av + k1:av + k1 + k2]
    for j in range(k1):
        v1[j] = math.exp(2.0 * s1[j])
    for j in range(k2):
        v2[j] = math.exp(2.0 * s2[j])
    loss = _residual(U1, V1, Z, R)
    gemm(U2, W2, M)
    gemm(V1, V1.T, G)
    for i in range(k1):
        M[i, i] -= 1.0
        G[i, i] += v1[i]
    gemm(M, G, MG)
    gemm(W2, G, W2G)
    # element-wise work over a whole block runs over its flat index (one loop, one index)
    for t in range(kk):                 # β₁ tr(MGMᵀ)
        loss += beta1 * ws[aMG + t] * ws[aM + t]
    for t in range(wk):                 # β₂c² tr(W₂GW₂ᵀ)
        loss += b2c * ws[aW2G + t] * row[o3 + t]
    gemm(M.T, M, H)
    gemm(W2.T, W2, WtW)
    for t in range(kk):
        ws[aH + t] = beta1 * ws[aH + t] + b2c * ws[aWtW + t]
    gemm(H, V1, T)
    gemm(R, V1.T, gU1)
    gemm(U1.T, R, gV1)
    for t in range(d * k1):             # ∂/∂U₁ = 2RV₁ᵀ (+ the σ₁ term below)
        g[t] *= 2.0
    for t in range(k1 * r):             # ∂/∂V₁ = 2(U₁ᵀR + HV₁)
        g[o1 + t] = 2.0 * (g[o1 + t] + ws[aT + t])
    gemm(MG, W2.T, gU2)
    gemm(U2.T, MG, WW)
    for t in range(k1 * k2):            # ∂/∂U₂ = 2β₁(MG)W₂ᵀ (+ the σ₂ term below)
        g[o2 + t] *= 2.0 * beta1
    for t in range(wk):                 # ∂/∂W₂ = 2β₁U₂ᵀ(MG) + 2β₂c²W₂G
        g[o3 + t] = (2.0 * beta1) * ws[aWW + t] + (2.0 * b2c) * ws[aW2G + t]
    for j in range(k1):
        col = 0.0
        for i in range(d):
            col += U1[i, j] * U1[i, j]
            gU1[i, j] += 2.0 * v1[j] * U1[i, j]
        loss += v1[j] * col
        if learn[0]:                    # H[j, j] = β₁‖M[:, j]‖² + β₂c²‖W₂[:, j]‖²
            loss -= 2.0 * beta1 * ed2 * s1[j]
            gs1[j] = 2.0 * v1[j] * (col + H[j, j]) - 2.0 * beta1 * ed2
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


@njit(**_INLINE)
def _norm(g):
    """Euclidean norm of a flat vector without a temporary."""
    acc = 0.0
    for i in range(g.shape[0]):
        acc += g[i] * g[i]
    return math.sqrt(acc)


@njit(**_INLINE)
def _step(row, g, m, v, t, lr, options, gnorm):
    """One optimizer update of a flat parameter vector (GD with momentum, or Adam; optional
    norm clipping). GD keeps its velocity in ``m``; with ``momentum = 0`` it is plain GD."""
    scale = _clip_factor(gnorm, options.clip)
    if _ADAM == 1 or (_ADAM == -1 and options.adam):
        # bias corrections folded into two scalars; locals instead of re-reads let LLVM
        # vectorize the loop (its cost is the element-wise sqrt and division)
        b1, b2, eps = options.b1, options.b2, options.eps
        a = lr / (1.0 - math.pow(b1, float(t)))
        inv_c2 = 1.0 / (1.0 - math.pow(b2, float(t)))
        ob1 = 1.0 - b1
        ob2 = 1.0 - b2
        for i in range(row.shape[0]):
            gi = g[i] * scale
            mi = b1 * m[i] + ob1 * gi
            vi = b2 * v[i] + ob2 * gi * gi
            m[i] = mi
            v[i] = vi
            row[i] -= a * mi / (math.sqrt(vi * inv_c2) + eps)
    else:
        mu = options.momentum
        for i in range(row.shape[0]):
            mi = mu * m[i] + scale * g[i]
            m[i] = mi
            row[i] -= lr * mi


@njit(**_JIT)
def _advance(state, b, loss, options):
    """Record ``loss`` of config ``b``, apply the stopping rule, then take one step.

    Returns False when the config stopped (its ``status`` set to CONVERGED or DIVERGED)."""
    g = state.grad[b]
    gn = _norm(g)
    state.loss[b] = loss
    state.grad_norm[b] = gn
    diverged, converged = _stopped(loss, gn, state.prev_loss[b], options.tol, options.gtol)
    if diverged:
        state.status[b] = DIVERGED
        return False
    if converged:
        state.status[b] = CONVERGED
        return False
    if _ADAM == 0 or (_ADAM == -1 and not options.adam):
        if options.momentum > 0.0 and _velocity_kept(loss, state.prev_loss[b]) == 0.0:
            state.adam_m[b][:] = 0.0
        if options.adapt > 0.0:
            state.lr[b] = _bold_driver(state.lr[b], loss, state.prev_loss[b], options.adapt)
    state.prev_loss[b] = loss
    state.step[b] += 1
    lr_t = _decayed_lr(state.lr[b], options.lr_decay, state.step[b])
    _step(state.params[b], g, state.adam_m[b], state.adam_v[b], state.step[b], lr_t, options, gn)
    return True


@njit(**_INLINE)
def _scratch(work):
    """The scratch space of one configuration: ``work`` itself when the configurations run in
    turn (the serial loops then allocate nothing, nor compile an allocation), a new array like it
    when they run at once."""
    if _PARALLEL != 0:
        return np.empty_like(work)
    return work


# One loop per kernel family (not one loop branching on the family), so that a VAE fit compiles
# only the VAE/CVAE loss and an MHVAE fit only the MHVAE loss; the loops differ in that one call.

def _train_vae_impl(problem, state, options, n_steps, work):
    for b in prange(state.params.shape[0]):
        if state.status[b] != RUNNING:
            continue
        row = state.params[b]
        g = state.grad[b]
        ws = _scratch(work)
        for _ in range(n_steps):
            loss = _vae_loss_grad(problem.Z, row, g, problem.hyper[b], problem.dims, problem.offsets,
                                  problem.learn, ws)
            if not _advance(state, b, loss, options):
                break


def _train_mhvae_impl(problem, state, options, n_steps, work):
    for b in prange(state.params.shape[0]):
        if state.status[b] != RUNNING:
            continue
        row = state.params[b]
        g = state.grad[b]
        ws = _scratch(work)
        for _ in range(n_steps):
            loss = _mhvae_loss_grad(problem.Z, row, g, problem.hyper[b], problem.dims, problem.offsets,
                                    problem.learn, ws)
            if not _advance(state, b, loss, options):
                break


def _clone(fn, name, **overrides):
    """A copy of ``fn`` under another name, optionally calling other functions.

    Numba's on-disk cache is keyed by the function's name and signature, not by its compile
    options, so a serial and a parallel dispatcher of the *same* function would load each
    other's machine code; a renamed copy gets its own cache entry. ``overrides`` replace global
    names the copy calls (a snapshot of the module's globals, taken after everything it calls).
    """
    globals_ = dict(fn.__globals__, **overrides) if overrides else fn.__globals__
    new = types.FunctionType(fn.__code__, globals_, name, fn.__defaults__, fn.__closure__)
    new.__qualname__ = name
    return new


_IMPL = {"vae": (_train_vae_impl, _vae_loss_grad), "mhvae": (_train_mhvae_impl, _mhvae_loss_grad)}
_KERNELS = {}


def _specialize(fn, tag, switches, inline, **calls):
    """A dispatcher of a renamed copy of the njit function ``fn`` whose globals set ``switches``
    and name the copies it ``calls``; inlined into its caller when ``inline``."""
    name = fn.py_func.__name__
    return njit(**(_INLINE if inline else _JIT))(_clone(fn.py_func, f"{name}_{tag}", **switches, **calls))


def _variant(loop, name, tag, parallel, adam, conditional, loss, inline_loss, advance):
    """The dispatcher of a variant of an outer ``loop`` (``prange`` runs in parallel only when
    ``parallel``): a copy called ``name`` whose switches are set and whose calls go to its own
    copies (``tag``) of the ``loss``, of ``_scratch`` and of ``_advance`` (``advance``, the moment
    loops) or ``_step`` (the minibatch epoch, which has no stopping rule)."""
    switches = dict(_ADAM=int(adam), _CONDITIONAL=int(bool(conditional)), _PARALLEL=int(bool(parallel)))
    step = _specialize(_step, tag, switches, True)
    calls = {loss.py_func.__name__: _specialize(loss, tag, switches, inline_loss),
             "_scratch": _specialize(_scratch, tag, switches, True)}
    if advance:
        calls["_advance"] = _specialize(_advance, tag, switches, not parallel, _step=step)
    else:
        calls["_step"] = step
    copy = _clone(loop, name, **calls)
    return njit(parallel=True, **_JIT)(copy) if parallel else njit(**_JIT)(copy)


def _kernel(family, parallel, adam, conditional):
    """The compiled loop of one variant: family, serial or parallel, Adam or GD, and (VAE family)
    with or without the CVAE block.

    A variant is a renamed copy of the family's loop (:func:`_variant`) whose globals set the
    switches ``_ADAM``, ``_CONDITIONAL`` and ``_PARALLEL`` and name its own copies of ``_advance``,
    ``_step``, ``_scratch`` and the loss, so a call compiles only the code it runs; ``njit`` without signatures compiles
    lazily, so a process compiles (or loads from the on-disk cache) only the variants and dtypes
    it calls. The small helpers are inlined into every caller (``inline="always"``: one function
    to type and lower instead of ten). The serial VAE/CVAE loops also inline the loss and gradient;
    the parallel loops and the MHVAE call it, since inlining it there made the first compile
    slower (a ``prange`` body that holds it; the MHVAE's 0.4 s of IR copying).
    ``_advance`` is inlined into the serial loops only: in a ``prange`` body its
    ``state.step[b] += 1`` becomes an in-place update of a tuple attribute, which Numba's parfor
    lowering (0.68) mishandles — the step count stayed 0, so Adam's bias correction divided by
    zero and every loss was NaN (the bug :func:`_minibatch_epoch_impl` works around with locals;
    here, passing ``_advance`` the step array hoisted out of the ``prange`` still gave NaN).
    """
    key = (family, bool(parallel), bool(adam), bool(conditional) if family == "vae" else None)
    if key not in _KERNELS:
        impl, loss = _IMPL[family]
        tag = "_".join([family, "parallel" if parallel else "serial", "adam" if adam else "gd"]
                       + ([] if family == "mhvae" else ["cvae" if conditional else "vae"]))
        _KERNELS[key] = _variant(impl, "_train_" + tag, tag, parallel, adam, conditional, loss,
                                 inline_loss=not parallel and family == "vae", advance=True)
    return _KERNELS[key]


def _use_parallel(B, work):
    """``prange`` over configurations when there are enough of them, each is small (see
    ``_config.PARALLEL_MAX_WORK``) and all of them together are large enough to repay the
    parallel variant's one-time compilation (``_config.PARALLEL_MIN_TOTAL_WORK``); otherwise
    configurations run in turn with threaded BLAS."""
    from numba import get_num_threads

    return (_config.PARALLEL and B >= get_num_threads() > 1 and work <= _config.PARALLEL_MAX_WORK
            and B * work >= _config.PARALLEL_MIN_TOTAL_WORK)


def _run(family, problem, state, options, n_steps, parallel):
    dims = problem.dims
    if parallel is None:
        work = float(dims[0]) * float(dims[1]) * (float(dims[2]) + float(dims[3]))
        parallel = _use_parallel(state.params.shape[0], work)
    kernel = _kernel(family, parallel, options.adam, family == "vae" and dims[3] > 0)
    work = np.empty(workspace_size(family, dims), dtype=state.params.dtype)
    kernel(problem, state, KernelOptions.of(**options._asdict()), int(n_steps), work)


def train_vae(problem, state, options, n_steps, *, parallel=None):
    """Run up to ``n_steps`` fused steps of the VAE/CVAE for every running configuration.

    Parameters
    ----------
    problem : KernelProblem
        ``dims = (d, k, r, q)`` (q = 0: the VAE), ``hyper[b] = (β, c², η_dec²)``,
        ``learn = (learn σ,)``.
    state : TrainState
        Updated in place.
    options : KernelOptions
    n_steps : int
    parallel : bool, optional
        Force the parallel or serial variant (default: see :func:`_use_parallel`).

    Notes
    -----
    SPEC §2 whitened VAE/CVAE loss (Thm 1, Thm 2, Thm 4 settings); the contract is that of
    :mod:`linvae.kernels.contract`.
    """
    _run("vae", problem, state, options, n_steps, parallel)


def train_mhvae(problem, state, options, n_steps, *, parallel=None):
    """MHVAE twin of :func:`train_vae` (``dims = (d, k1, r, k2)``, ``hyper[b] = (β₁, β₂, c², η_dec²)``,
    ``learn = (learn σ₁, learn σ₂)``).

    Notes
    -----
    SPEC §2 MHVAE loss (Thm 3, Thm 5 and the both-learned case, which has no closed form).
    """
    _run("mhvae", problem, state, options, n_steps, parallel)


# ---------------------------------------------------------------------------------------------
# Data-space minibatch training (the paper's scripts: Adam, batch 128, reparameterized samples)
# ---------------------------------------------------------------------------------------------
#
# Layout: the ``"minibatch"`` family of ``contract.LAYOUTS`` (``dims = (dx, dy, k)``; the VAE is
# the case dx = 0 with y the data): W1 (k×dx), W2 (k×dy), U1 (dy×k), U2 (dy×dx), log σ (k).
# Encoder mean m = W₁x + W₂y, sample z = m + σ⊙ε, decoder mean U₁z + U₂x, loss per example
#     ‖U₁z + U₂x − y‖² + βc²(‖m‖² + Σσ²) − βη_dec² Σ log σ²,
# an unbiased estimate of the SPEC §2 loss (its expectation over ε is the exact loss).


def minibatch_workspace_size(batch, dx, dy, k):
    """Floats of scratch :func:`_minibatch_loss_grad` needs for batches of up to ``batch`` rows."""
    return batch * (4 * k + 2 * dy)


@njit(**_JIT)
def _minibatch_loss_grad(Xb, Yb, Eb, row, g, hyper, dims, off, learn, ws):
    """Stochastic loss and gradient of one VAE/CVAE config on one minibatch.

    ``Xb``, ``Yb``, ``Eb`` are contiguous row blocks; every product is written in place (into the
    gradient blocks of ``g`` or the scratch ``ws`` of :func:`minibatch_workspace_size` floats), so
    a step allocates nothing.
    """
    dx, dy, k = dims[0], dims[1], dims[2]
    beta, c2, ed2 = hyper[0], hyper[1], hyper[2]
    bc = beta * c2
    n = Yb.shape[0]
    o1, o2, o3, o4 = off[1], off[2], off[3], off[4]
    W2 = matrix(row, o1, k, dy)
    U1 = matrix(row, o2, dy, k)
    s = row[o4:o4 + k]
    M = matrix(ws, 0, n, k)
    Zs = matrix(ws, n * k, n, k)
    GZ = matrix(ws, 2 * n * k, n, k)
    G = matrix(ws, 3 * n * k, n, k)
    R = matrix(ws, 4 * n * k, n, dy)
    T = matrix(ws, 4 * n * k + n * dy, n, dy)
    gemm(Yb, W2.T, M)
    if _CONDITIONAL != 0 and dx > 0:
        W1 = matrix(row, 0, k, dx)
        gemm(Xb, W1.T, Zs)
        for i in range(n):
            for j in range(k):
                M[i, j] += Zs[i, j]
    msq = 0.0
    for i in range(n):
        for j in range(k):
            m = M[i, j]
            msq += m * m
            Zs[i, j] = m + Eb[i, j] * math.exp(s[j])
    gemm(Zs, U1.T, R)
    if _CONDITIONAL != 0 and dx > 0:
        U2 = matrix(row, o3, dy, dx)
        gemm(Xb, U2.T, T)
    rsq = 0.0
    for i in range(n):
        for c in range(dy):
            x = R[i, c] - Yb[i, c]
            if _CONDITIONAL != 0 and dx > 0:
                x += T[i, c]
            R[i, c] = x
            rsq += x * x
    inv = 1.0 / n
    loss = (rsq + bc * msq) * inv
    gemm(R, U1, GZ)
    for i in range(n):
        for j in range(k):
            G[i, j] = 2.0 * inv * (GZ[i, j] + bc * M[i, j])      # ∂L/∂m per example
    gW2 = matrix(g, o1, k, dy)
    gU1 = matrix(g, o2, dy, k)
    gemm(G.T, Yb, gW2)
    gemm(R.T, Zs, gU1)
    for c in range(dy):
        for j in range(k):
            gU1[c, j] *= 2.0 * inv
    if _CONDITIONAL != 0 and dx > 0:
        gW1 = matrix(g, 0, k, dx)
        gU2 = matrix(g, o3, dy, dx)
        gemm(G.T, Xb, gW1)
        gemm(R.T, Xb, gU2)
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


def _minibatch_epoch_impl(problem, state, options, Xp, Yp, Ep, batch, work):
    # the state's arrays as locals: Numba's parfor lowering mishandles in-place updates of a
    # tuple attribute inside a prange body (the step count read back stale)
    params, grad, adam_m, adam_v, lr, step = state.params, state.grad, state.adam_m, state.adam_v, state.lr, state.step
    loss_out, grad_norm, status = state.loss, state.grad_norm, state.status
    B = params.shape[0]
    N = Yp.shape[0]
    nb = (N + batch - 1) // batch
    dims = problem.dims
    for b in prange(B):
        if status[b] != RUNNING:
            continue
        row = params[b]
        g = grad[b]
        ws = _scratch(work)
        total = 0.0
        for ib in range(nb):
            lo = ib * batch
            hi = min(N, lo + batch)
            loss = _minibatch_loss_grad(Xp[lo:hi], Yp[lo:hi], Ep[lo:hi], row, g, problem.hyper[b], dims,
                                        problem.offsets, problem.learn, ws)
            gn = _norm(g)
            grad_norm[b] = gn
            diverged, _ = _stopped(loss, gn, math.inf, -1.0, -1.0)    # no convergence test: every epoch runs
            if diverged:
                status[b] = DIVERGED
                break
            total += loss * (hi - lo)
            step[b] += 1
            _step(row, g, adam_m[b], adam_v[b], step[b], lr[b], options, gn)
        loss_out[b] = total / N


_MINIBATCH = {}


def _minibatch_kernel(parallel, conditional):
    """The compiled epoch of one variant (serial or parallel, VAE or CVAE), built like
    :func:`_kernel`: Adam only (the minibatch solver's optimizer), the CVAE blocks pruned for
    the VAE, the loss inlined into the serial epoch."""
    key = (bool(parallel), bool(conditional))
    if key not in _MINIBATCH:
        tag = "_".join(["minibatch", "parallel" if parallel else "serial", "cvae" if conditional else "vae"])
        _MINIBATCH[key] = _variant(_minibatch_epoch_impl, "_epoch_" + tag, tag, parallel, True, conditional,
                                   _minibatch_loss_grad, inline_loss=not parallel, advance=False)
    return _MINIBATCH[key]


def minibatch_epoch(problem, state, options, X, Y, noise, perm, batch_size, *, parallel=None):
    """One epoch of minibatch Adam on raw data for every running config (shared batches and noise).

    Parameters
    ----------
    problem : KernelProblem
        Of the ``"minibatch"`` family: ``dims = (dx, dy, k)``, ``hyper[b] = (β, c², η_dec²)``,
        ``learn = (learn σ,)`` (``Z`` is not used).
    state : TrainState
        Updated in place; ``state.loss`` receives the mean stochastic loss of the epoch, and a
        config whose loss or gradient becomes non-finite gets ``status`` DIVERGED.
    options : KernelOptions
        Adam constants and ``clip`` (the step is ``state.lr``, without decay).
    X : ndarray (N, dx)
        Condition (an (N, 0) array for the VAE).
    Y : ndarray (N, dy)
        Target (the data itself for the VAE).
    noise : ndarray (N, k)
        Standard normal ε of this epoch (drawn by the caller from a seeded generator).
    perm : int64 array (N,)
        Example order of this epoch.
    batch_size : int
    parallel : bool, optional

    Notes
    -----
    The reparameterized estimator of the SPEC §2 loss (Thm 1/2/4 models), as the paper's
    training scripts use it.
    """
    dims = problem.dims
    if parallel is None:
        parallel = _use_parallel(state.params.shape[0], float(batch_size) * float(dims[2]) * float(dims[0] + dims[1]))
    fn = _minibatch_kernel(parallel, dims[0] > 0)
    work = np.empty(minibatch_workspace_size(batch_size, *(int(n) for n in dims)), dtype=state.params.dtype)
    # one gather per epoch (shared by every config); the batches are then contiguous row blocks
    fn(problem, state, KernelOptions.of(**dict(options._asdict(), adam=True)), X[perm], Y[perm], noise[perm],
       int(batch_size), work)
