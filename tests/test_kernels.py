"""The kernel contract (linvae/kernels/contract.py) and every backend that implements it.

Each backend's loss and gradient are compared with an independent dense NumPy reference (the
SPEC §2 losses written out per configuration here, differentiated by complex steps, so no
analytic gradient of the package is involved), a few steps with textbook GD/Adam loops, and the
backends with each other; the stopping rule, the status codes and the bold driver are checked
against their definitions; the drivers keep the user's ``rtol`` and keep GPU state on the GPU.
"""
import warnings

import numpy as np
import pytest

import linvae
from linvae import _backend
from linvae.kernels import array, contract, cpu, entry, gpu
from linvae.kernels.contract import (CONVERGED, DIVERGED, RUNNING, KernelOptions, KernelProblem, TrainState,
                                     make_rules, offsets, pack, size, unpack)

# ----------------------------------------------------------------------------- backends

BACKENDS = {
    "numba-serial": lambda family: lambda *a: getattr(cpu, f"train_{family}")(*a, parallel=False),
    "numba-parallel": lambda family: lambda *a: getattr(cpu, f"train_{family}")(*a, parallel=True),
    "numpy": lambda family: getattr(array, f"train_{family}"),
}

# (family, dims, learn): VAE with learned and fixed σ, CVAE, MHVAE Thm 3 / Thm 5 / both learned
CASES = {
    "vae": ("vae", (6, 3, 5, 0), [True]),
    "vae-fixed": ("vae", (6, 3, 5, 0), [False]),
    "cvae": ("vae", (5, 3, 4, 2), [True]),
    "mhvae-thm3": ("mhvae", (6, 3, 5, 2), [False, True]),
    "mhvae-thm5": ("mhvae", (5, 2, 4, 2), [False, False]),
    "mhvae-both": ("mhvae", (6, 2, 5, 3), [True, True]),
}


def _case(name, B=3, seed=0):
    family, dims, learn = CASES[name]
    rng = np.random.default_rng(seed)
    Z = rng.normal(size=(dims[0], dims[2]))
    params = 0.5 * rng.normal(size=(B, size(family, dims)))
    betas = [np.linspace(0.5, 2.0, B)] if family == "vae" else [np.linspace(0.4, 1.5, B), np.linspace(1.7, 0.6, B)]
    hyper = np.column_stack(betas + [np.linspace(1.0, 0.3, B), np.linspace(0.6, 1.4, B)])
    return family, KernelProblem.build(family, Z, hyper, dims, learn), params


# ----------------------------------------------------------------------------- dense reference

def _dense_loss(family, Z, p, h, dims, learn):
    """SPEC §2 whitened loss of one configuration (``p`` may be complex: complex-step derivative)."""
    blocks = [b[0] for b in unpack(family, p[None], dims)]
    if family == "vae":
        U, V, A, C, s = blocks
        beta, c2, ed2 = h
        var = np.exp(2 * s)
        R, Q = U @ V - Z, U @ A + C
        return (np.sum(R * R) + np.sum(Q * Q) + np.sum(var * np.sum(U * U, axis=0))
                + beta * c2 * (np.sum(A * A) + np.sum(V * V) + np.sum(var)) - beta * ed2 * np.sum(2 * s))
    U1, V1, U2, W2, s1, s2 = blocks
    beta1, beta2, c2, ed2 = h
    S1, S2 = np.diag(np.exp(2 * s1)), np.diag(np.exp(2 * s2))
    R = U1 @ V1 - Z
    M = U2 @ W2 - np.eye(len(s1))
    G = V1 @ V1.T + S1                                   # second moment of z₁
    loss = (np.sum(R * R) + np.trace(U1 @ S1 @ U1.T) + beta1 * (np.trace(M @ G @ M.T) + np.trace(U2 @ S2 @ U2.T))
            + beta2 * c2 * (np.trace(W2 @ G @ W2.T) + np.trace(S2)) - beta2 * ed2 * np.sum(2 * s2))
    if learn[0]:
        loss = loss - beta1 * ed2 * np.sum(2 * s1)
    return loss


def _dense_grad(family, Z, p, h, dims, learn):
    """Complex-step gradient of :func:`_dense_loss` (exact to round-off); fixed σ blocks are 0."""
    g = np.array([_dense_loss(family, Z, p + 1e-30j * e, h, dims, learn).imag / 1e-30 for e in np.eye(p.size)])
    off = offsets(family, dims)
    sigma_blocks = [len(off) - 2] if family == "vae" else [len(off) - 3, len(off) - 2]
    for flag, i in zip(learn, sigma_blocks):
        if not flag:
            g[off[i]:off[i + 1]] = 0.0
    return g


def test_dense_reference_gradient_matches_finite_differences():
    """The reference itself: its complex-step gradient agrees with central differences."""
    for name in ("cvae", "mhvae-both"):
        family, problem, params = _case(name, B=1)
        p, h = params[0], problem.hyper[0]
        g = _dense_grad(family, problem.Z, p, h, problem.dims, problem.learn)
        num = np.array([(_dense_loss(family, problem.Z, p + 1e-6 * e, h, problem.dims, problem.learn)
                         - _dense_loss(family, problem.Z, p - 1e-6 * e, h, problem.dims, problem.learn)) / 2e-6
                        for e in np.eye(p.size)])
        np.testing.assert_allclose(g, num, rtol=1e-6, atol=1e-6)


# ----------------------------------------------------------------------------- layout table

def test_layout_table_gives_the_documented_blocks():
    d, k, r, q = 5, 3, 4, 2
    assert [s for _, s in contract.block_shapes("vae", (d, k, r, q))] == [(d, k), (k, r), (k, q), (d, q), (k,)]
    np.testing.assert_array_equal(offsets("vae", (d, k, r, q)), np.cumsum([0, 15, 12, 6, 10, 3]))
    d, k1, r, k2 = 6, 3, 5, 2
    assert [s for _, s in contract.block_shapes("mhvae", (d, k1, r, k2))] == [
        (d, k1), (k1, r), (k1, k2), (k2, k1), (k1,), (k2,)]
    assert size("mhvae", (d, k1, r, k2)) == d * k1 + k1 * r + 2 * k1 * k2 + k1 + k2
    dx, dy, k = 3, 4, 2
    assert size("minibatch", (dx, dy, k)) == k * dx + k * dy + dy * k + dy * dx + k
    rng = np.random.default_rng(0)
    blocks = [rng.normal(size=s) for _, s in contract.block_shapes("mhvae", (d, k1, r, k2))]
    for got, want in zip(unpack("mhvae", pack(blocks)[None], (d, k1, r, k2)), blocks):
        np.testing.assert_array_equal(got[0], want)


# ----------------------------------------------------------------------------- loss and gradient

@pytest.mark.parametrize("backend", list(BACKENDS))
@pytest.mark.parametrize("name", list(CASES))
def test_first_step_loss_and_gradient_match_the_dense_reference(backend, name):
    family, problem, params = _case(name)
    state = TrainState.start(params.copy(), 1e-3)
    BACKENDS[backend](family)(problem, state, KernelOptions.of(adam=True), 1)
    for b in range(params.shape[0]):
        args = (family, problem.Z, params[b], problem.hyper[b], problem.dims, problem.learn)
        assert state.loss[b] == pytest.approx(_dense_loss(*args).real, rel=1e-12)
        np.testing.assert_allclose(state.grad[b], _dense_grad(*args), rtol=1e-10, atol=1e-12)
        assert state.grad_norm[b] == pytest.approx(np.linalg.norm(_dense_grad(*args)), rel=1e-12)
    np.testing.assert_array_equal(state.step, 1)
    np.testing.assert_array_equal(state.status, RUNNING)


def _textbook(family, problem, params, lr, adam, n, b1=0.9, b2=0.999, eps=1e-8):
    """``n`` steps of textbook GD / Adam on the dense reference gradient."""
    out = params.copy()
    for b in range(len(out)):
        p, m, v = out[b], np.zeros(out.shape[1]), np.zeros(out.shape[1])
        for t in range(1, n + 1):
            g = _dense_grad(family, problem.Z, p, problem.hyper[b], problem.dims, problem.learn)
            if adam:
                m = b1 * m + (1 - b1) * g
                v = b2 * v + (1 - b2) * g * g
                p = p - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
            else:
                p = p - lr * g
        out[b] = p
    return out


@pytest.mark.parametrize("backend", list(BACKENDS))
@pytest.mark.parametrize("name", ["vae", "cvae", "mhvae-thm3", "mhvae-both"])
@pytest.mark.parametrize("adam", [False, True])
def test_steps_match_textbook_gd_and_adam_on_the_dense_reference(backend, name, adam):
    family, problem, params = _case(name)
    lr = 1e-2 if adam else 2e-3
    state = TrainState.start(params.copy(), lr)
    BACKENDS[backend](family)(problem, state, KernelOptions.of(adam=adam), 4)
    np.testing.assert_allclose(state.params, _textbook(family, problem, params, lr, adam, 4), rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(state.step, 4)


OPTION_SETS = {
    "adam": dict(adam=True),
    "adam-clip-decay": dict(adam=True, clip=0.5, lr_decay=0.05),
    "gd-bold-driver": dict(adam=False, adapt=0.1),
    "gd-clip": dict(adam=False, clip=0.3),
}


@pytest.mark.parametrize("options", list(OPTION_SETS))
@pytest.mark.parametrize("name", list(CASES))
def test_backends_agree_with_each_other_for_several_steps(name, options):
    family, problem, params = _case(name, B=4, seed=3)
    opts = KernelOptions.of(**OPTION_SETS[options])
    lr = np.array([1e-2, 5e-3, 2e-2, 1e-3]) if opts.adam else np.array([1e-3, 2e-3, 5e-3, 4e-3])
    states = {}
    for backend, make in BACKENDS.items():
        state = TrainState.start(params.copy(), lr)
        make(family)(problem, state, opts, 3)
        make(family)(problem, state, opts, 4)           # a second call continues the first
        states[backend] = state
    ref = states.pop("numpy")
    for backend, state in states.items():
        for field in TrainState._fields:
            np.testing.assert_allclose(getattr(state, field), getattr(ref, field), rtol=1e-10, atol=1e-13,
                                       err_msg=f"{backend}: {field}")
    np.testing.assert_array_equal(ref.step, 7)


@pytest.mark.slow
@pytest.mark.parametrize("options", [dict(adam=True, clip=0.5, lr_decay=0.05),
                                     dict(adam=False, momentum=0.9, adapt=0.1, clip=0.3)], ids=["adam", "gd"])
@pytest.mark.parametrize("name", ["vae", "cvae", "mhvae-both"])
def test_each_compiled_variant_equals_the_loop_with_run_time_switches(name, options):
    """``cpu._kernel`` compiles one loop per variant, pruning the branches its switches rule out;
    the loop with the switches left to run time (the module's own ``_ADAM = _CONDITIONAL = -1``)
    must give bit-identical states."""
    from numba import njit

    family, problem, params = _case(name, B=3, seed=5)
    opts = KernelOptions.of(**options)
    impl = cpu._train_vae_impl if family == "vae" else cpu._train_mhvae_impl
    generic = njit(cache=False)(cpu._clone(impl, f"_generic_{family}_loop_for_test"))
    states = []
    work = np.full(cpu.workspace_size(family, problem.dims), np.nan)
    for run in (lambda st: generic(problem, st, opts, 9, work),
                lambda st: getattr(cpu, f"train_{family}")(problem, st, opts, 9, parallel=False)):
        state = TrainState.start(params.copy(), 1e-2 if opts.adam else 2e-3)
        run(state)
        states.append(state)
    for field in TrainState._fields:
        np.testing.assert_array_equal(getattr(states[1], field), getattr(states[0], field), err_msg=field)
    assert cpu._ADAM == -1 and cpu._CONDITIONAL == -1        # the module's switches stay run-time


@pytest.mark.parametrize("impl", ["gemm", "gemm_numpy"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(4, 3, 5), (1, 7, 1), (3, 0, 2), (0, 2, 3), (2, 3, 0)], ids=str)
def test_gemm_intrinsic_equals_numpy_matmul_for_every_layout(shape, dtype, impl):
    """The kernels' one matrix product (``kernels/_intrinsics.gemm``, and its ``np.dot`` fallback
    for a Numba without the internals it uses): C and transposed (F) operands, both precisions,
    and the empty products (k = 0 zero-fills, m or n = 0 writes nothing)."""
    from numba import njit

    from linvae.kernels import _intrinsics

    gemm = getattr(_intrinsics, impl)

    @njit(cache=False)
    def products(A, B, At, Bt, out):
        gemm(A, B, out[0])
        gemm(At.T, B, out[1])
        gemm(A, Bt.T, out[2])
        gemm(At.T, Bt.T, out[3])

    m, k, n = shape
    rng = np.random.default_rng(sum(shape))
    A = rng.normal(size=(m, k)).astype(dtype)
    B = rng.normal(size=(k, n)).astype(dtype)
    out = np.full((4, m, n), np.nan, dtype=dtype)
    products(A, B, A.T.copy(), B.T.copy(), out)
    ref = (A.astype(np.float64) @ B.astype(np.float64))
    tol = 1e-12 if dtype == np.float64 else 1e-5
    for i in range(4):
        np.testing.assert_allclose(out[i], ref, rtol=tol, atol=tol, err_msg=f"layout combination {i}")


@pytest.mark.parametrize("impl", ["matrix", "matrix_numpy"])
def test_matrix_intrinsic_is_the_reshaped_slice_and_rejects_views_outside_the_vector(impl):
    """The kernels' views of packed parameters and scratch (``kernels/_intrinsics.matrix``, and its
    ``reshape`` fallback): a view, not a copy, equal to ``flat[start:start + rows·cols].reshape(rows,
    cols)``; a view that does not fit raises instead of reading past the vector."""
    from numba import njit

    from linvae.kernels import _intrinsics

    matrix = getattr(_intrinsics, impl)
    assert _intrinsics.NUMBA_INTERNALS          # this Numba has them: the kernels use the intrinsics

    @njit(cache=False)
    def view_and_write(flat, start, rows, cols):
        M = matrix(flat, start, rows, cols)
        M[rows - 1, cols - 1] = -1.0
        return M

    flat = np.arange(20, dtype=np.float64)
    expected = flat[5:17].reshape(4, 3).copy()
    expected[-1, -1] = -1.0
    M = view_and_write(flat, 5, 4, 3)
    np.testing.assert_array_equal(M, expected)
    assert flat[16] == -1.0 and M.flags.c_contiguous
    for bad in [(10, 4, 3), (-1, 2, 2), (0, 7, 3)]:
        with pytest.raises(ValueError, match="does not fit"):
            view_and_write(flat, *bad)


def test_entry_names_each_family_per_backend():
    assert entry("numba", "vae") is cpu.train_vae and entry("numpy", "mhvae") is array.train_mhvae
    assert entry(_backend.Backend("cupy"), "vae") is gpu.train_vae
    with pytest.raises(ValueError, match="family"):
        entry("numba", "cvae")
    from linvae import kernels

    assert set(kernels._MODULES) == set(_backend.BACKENDS)     # every backend has its kernel module


def test_backend_is_resolved_once_from_the_choice_and_the_input(monkeypatch):
    assert _backend.resolve("auto").name == "numba" and _backend.resolve("numpy").xp is np
    with pytest.raises(ValueError, match=r"backend must be one of .*'numba'.*got 'torch'"):
        _backend.resolve("torch")
    monkeypatch.setattr(_backend, "get_cupy", lambda: "cupy-module")
    device = _backend.resolve("auto", device_input=True)
    assert device.name == "cupy" and device.on_device and device.xp == "cupy-module"
    assert _backend.resolve(device) is device
    assert not _backend.is_cupy(np.zeros(3)) and _backend.is_cupy(np.zeros(3).view(_DeviceArray))
    assert _backend.to_host(np.zeros(3).view(_DeviceArray)).__class__ is np.ndarray


# ----------------------------------------------------------------------------- status and stopping rule

def test_status_codes_are_the_named_constants():
    assert (RUNNING, CONVERGED, DIVERGED) == (0, 1, 2)
    assert (cpu.RUNNING, cpu.CONVERGED, cpu.DIVERGED) == (RUNNING, CONVERGED, DIVERGED)
    state = TrainState.start(np.zeros((2, 3)), 0.1)
    np.testing.assert_array_equal(state.status, RUNNING)


# (loss, grad_norm, prev_loss, tol, gtol) -> (diverged, converged), by the rule's definition
RULE_TABLE = [
    ((np.nan, 1.0, 2.0, 1e-3, 1e-3), (True, False)),
    ((1.0, np.inf, 2.0, 1e-3, 1e-3), (True, False)),
    ((-np.inf, 0.0, 2.0, 1e-3, 1e-3), (True, False)),
    ((1.0, 1e-4, 1.0 + 5e-4, 1e-3, 1e-3), (False, True)),          # both below tol·1, gtol·1
    ((1.0, 1e-2, 1.0 + 5e-4, 1e-3, 1e-3), (False, False)),         # gradient too large
    ((1.0, 1e-4, 1.0 + 5e-3, 1e-3, 1e-3), (False, False)),         # loss still moving
    ((1e4, 5.0, 1e4 + 5.0, 1e-3, 1e-3), (False, True)),            # tolerances scale with |L| = 1e4
    ((-1e4, 5.0, -1e4 - 5.0, 1e-3, 1e-3), (False, True)),          # ... with |L|, whatever its sign
    ((1e-6, 5e-4, 1e-6 + 5e-4, 1e-3, 1e-3), (False, True)),        # ... but never below 1
    ((1e-6, 2e-3, 1e-6, 1e-3, 1e-3), (False, False)),
    ((3.0, 0.0, np.inf, 1e-3, 1e-3), (False, False)),              # the first step never converges
]


def test_stopping_rule_follows_its_definition_on_arrays_and_in_the_numba_kernels():
    inputs = np.array([row[0] for row in RULE_TABLE])
    want = np.array([row[1] for row in RULE_TABLE])
    loss, gn, prev, tol, gtol = inputs.T
    diverged, converged = make_rules(np).stopped(loss, gn, prev, tol, gtol)
    np.testing.assert_array_equal(np.column_stack([diverged, converged]), want)
    for (args, expected) in RULE_TABLE:               # the scalar rule the Numba kernels compile
        assert tuple(bool(x) for x in cpu._stopped(*args)) == expected


def test_step_size_rules_follow_their_definitions():
    rules = make_rules(np)
    lr = np.array([0.1, 0.1, 0.2])
    np.testing.assert_array_equal(rules.bold_driver(lr, np.array([2.0, 1.0, 1.0]), np.array([1.0, 2.0, 1.0]), 0.25),
                                  [0.05, 0.125, 0.25])            # halve after a rise, else × (1 + adapt)
    np.testing.assert_array_equal(rules.decayed_lr(lr, 0.5, np.array([0, 2, 6])), [0.1, 0.05, 0.05])
    np.testing.assert_allclose(rules.clip_factor(np.array([0.5, 2.0, 8.0]), 2.0), [1.0, 1.0, 0.25], rtol=0, atol=0)
    assert rules.clip_factor(np.array([5.0]), 0.0) == 1.0
    assert cpu._bold_driver(0.1, 2.0, 1.0, 0.25) == 0.05 and cpu._bold_driver(0.1, 1.0, 2.0, 0.25) == 0.125
    assert cpu._clip_factor(8.0, 2.0) == 0.25 and cpu._clip_factor(8.0, 0.0) == 1.0


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_bold_driver_replays_from_the_loss_history(backend):
    family, problem, params = _case("vae", B=2, seed=5)
    adapt = 0.2
    state = TrainState.start(params.copy(), np.array([0.1, 1e-3]))
    run = BACKENDS[backend](family)
    losses, lrs = [], []
    for _ in range(10):
        run(problem, state, KernelOptions.of(adam=False, adapt=adapt), 1)
        losses.append(state.loss.copy())
        lrs.append(state.lr.copy())
    expected = np.array([0.1, 1e-3])                  # the first step has no previous loss: lr grows
    for t in range(10):
        prev = losses[t - 1] if t else np.full(2, np.inf)
        expected = np.where(losses[t] > prev, 0.5 * expected, (1 + adapt) * expected)
        np.testing.assert_array_equal(lrs[t], expected)
    assert np.any(np.diff(np.array(losses)[:, 0]) > 0)          # the large step did overshoot (halved)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")      # the diverging config overflows in NumPy
@pytest.mark.parametrize("backend", list(BACKENDS))
def test_converged_and_diverged_configs_stop_with_their_status(backend):
    family, problem, params = _case("cvae", B=2, seed=2)
    # config 0: a step far too large (diverges); config 1: a loose tolerance (converges)
    state = TrainState.start(params.copy(), np.array([50.0, 1e-2]))
    options = KernelOptions.of(adam=False, tol=3e-3, gtol=10.0)
    run = BACKENDS[backend](family)
    run(problem, state, options, 200)
    np.testing.assert_array_equal(state.status, [DIVERGED, CONVERGED])
    assert not (np.isfinite(state.loss[0]) and np.isfinite(state.grad_norm[0]))
    # at its stop the rule holds ...
    scale = max(1.0, abs(state.loss[1]))
    assert abs(state.prev_loss[1] - state.loss[1]) <= 3e-3 * scale and state.grad_norm[1] <= 10.0 * scale
    # ... and it held at none of the earlier evaluations
    stopped_at = int(state.step[1])
    assert 1 < stopped_at < 200
    one = KernelProblem.build(family, problem.Z, problem.hyper[1:], problem.dims, problem.learn)
    replay = TrainState.start(params[1:].copy(), 1e-2)
    run(one, replay, options, stopped_at)
    assert replay.status[0] == RUNNING and int(replay.step[0]) == stopped_at
    # stopped configs are left alone by later calls
    frozen = state.params.copy()
    run(problem, state, options, 5)
    np.testing.assert_array_equal(state.params, frozen)


def _update_in_place(params, g, m, v, *args, **kwargs):
    """``array.update_numpy`` writing into its arguments, as the fused CuPy update does."""
    for dst, src in zip((params, m, v), array.update_numpy(params, g, m, v, *args, **kwargs)):
        dst[...] = src
    return params, m, v


_update_in_place.in_place = True


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_an_in_place_update_gets_copies_so_stopped_rows_keep_their_values():
    """The array step loop hands an update that writes its inputs (``in_place = True``, the CuPy
    kernel) copies, and NumPy's (which returns new arrays) the state itself: both end in the same
    state, with the diverged and converged rows as they were when they stopped."""
    family, problem, params = _case("cvae", B=3, seed=2)
    options = KernelOptions.of(adam=False, tol=3e-3, gtol=10.0)
    states = []
    for update in (array.update_numpy, _update_in_place):
        state = TrainState.start(params.copy(), np.array([50.0, 1e-2, 1e-3]))
        array.train_batched(family, problem, state, options, 200, update=update)
        states.append(state)
    np.testing.assert_array_equal(states[0].status[:2], [DIVERGED, CONVERGED])
    for field in TrainState._fields:
        np.testing.assert_array_equal(getattr(states[1], field), getattr(states[0], field), err_msg=field)


# ----------------------------------------------------------------------------- minibatch kernel

def test_minibatch_serial_and_parallel_epochs_agree():
    rng = np.random.default_rng(0)
    N, dx, dy, k, B = 50, 3, 4, 2, 3
    X, Y, E = rng.normal(size=(N, dx)), rng.normal(size=(N, dy)), rng.normal(size=(N, k))
    dims = (dx, dy, k)
    hyper = np.column_stack([np.linspace(0.5, 2, B), np.ones(B), np.linspace(0.5, 1, B)])
    problem = KernelProblem.build("minibatch", np.zeros((0, 0)), hyper, dims, [True])
    params = 0.3 * rng.normal(size=(B, size("minibatch", dims)))
    states = []
    for parallel in (False, True):
        state = TrainState.start(params.copy(), 1e-2)
        for _ in range(2):
            cpu.minibatch_epoch(problem, state, KernelOptions.of(clip=1.0), X, Y, E, np.arange(N, dtype=np.int64)[::-1].copy(),
                                16, parallel=parallel)
        states.append(state)
    for field in ("params", "adam_m", "adam_v", "loss", "step"):
        np.testing.assert_allclose(getattr(states[0], field), getattr(states[1], field), rtol=1e-12)
    np.testing.assert_array_equal(states[0].step, 2 * 4)          # 4 batches of ≤ 16 per epoch


# ----------------------------------------------------------------------------- drivers

def test_hyper_rows_are_beta_c2_and_eta_dec2():
    from linvae.train import hyper_rows

    cols = dict(beta=[0.5, 2.0], eta_enc=[1.0, 2.0], eta_dec=[0.5, 3.0])
    np.testing.assert_allclose(hyper_rows("vae", cols), [[0.5, 0.25, 0.25], [2.0, 2.25, 9.0]])
    cols = dict(beta1=[0.5], beta2=[3.0], eta_enc=[2.0], eta_dec=[1.0])
    np.testing.assert_allclose(hyper_rows("mhvae", cols), [[0.5, 3.0, 0.25, 1.0]])


@pytest.mark.parametrize("conditional", [False, True])
def test_minibatch_solver_keeps_the_users_rtol(conditional):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 5)) * [3, 2, 1, 0.5, 0.003]       # φ ratio ~1e-6: dropped at rtol = 1e-4
    Y = X[:, :2] @ rng.normal(size=(2, 5)) * [1, 1, 1, 1, 1e-3] + rng.normal(size=(400, 5)) * [1, .5, .3, .2, 1e-3] \
        if conditional else None
    args = (X,) if Y is None else (X, Y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        closed = linvae.fit(*args, latent_dim=3, rtol=1e-4)
        default = linvae.fit(*args, latent_dim=3, solver="minibatch", epochs=1)
        trained = linvae.fit(*args, latent_dim=3, solver="minibatch", epochs=1, rtol=1e-4)
    assert len(default.data_theta) == len(closed.data_theta) + 1            # the default keeps that mode
    np.testing.assert_allclose(trained.data_theta, closed.data_theta, rtol=1e-12)
    np.testing.assert_allclose(trained.theta, closed.theta, rtol=1e-12)


class _DeviceArray(np.ndarray):
    """A NumPy array posing as a GPU array: ``_backend.is_cupy`` sees it, ``get()`` counts copies."""

    copies = []

    @property
    def __cuda_array_interface__(self):
        return {}

    def get(self):
        _DeviceArray.copies.append(self.size)
        return np.array(self)


class _FakeCupy:
    """The array module of :class:`_DeviceArray`: NumPy, with results and uploads kept "on the device"."""

    uploads = []

    def __getattr__(self, name):
        obj = getattr(np, name)
        if not callable(obj) or isinstance(obj, type):
            return obj

        def wrapped(*args, **kwargs):
            if name in ("asarray", "ascontiguousarray") and not isinstance(args[0], _DeviceArray):
                _FakeCupy.uploads.append(np.size(args[0]))
            out = obj(*args, **kwargs)
            return out.view(_DeviceArray) if isinstance(out, np.ndarray) else out
        return wrapped


@pytest.mark.parametrize("model", ["vae", "mhvae"])
def test_gpu_training_state_stays_on_the_device(monkeypatch, model):
    """backend="cupy" (a NumPy-backed stand-in): the packed parameters come to the host once, at
    the end — not after every history chunk — and the results equal the NumPy backend's."""
    fake = _FakeCupy()
    monkeypatch.setattr(_backend, "get_cupy", lambda: fake)
    monkeypatch.setattr(gpu, "get_cupy", lambda: fake)
    monkeypatch.setattr(gpu, "update_cupy", array.update_numpy)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 5)) * [3, 2, 1, 0.5, 0.2]
    kw = dict(model="mhvae", sigma1=0.5, beta2=[1.0, 2.0]) if model == "mhvae" else dict(beta=[0.5, 1.0, 2.0],
                                                                                          latent_dim=3)
    kw.update(solver="adam", max_iter=120, history_every=20)
    _DeviceArray.copies.clear()
    _FakeCupy.uploads.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", linvae.ConvergenceWarning)
        on_gpu = linvae.sweep(X, backend="cupy", chunk_size=10, **kw)
        on_cpu = linvae.sweep(X, backend="numpy", chunk_size=10, **kw)
    B = len(on_gpu)
    P = max(_DeviceArray.copies)
    assert P > 3 * B                                       # the packed parameters (B, P) ...
    assert _DeviceArray.copies.count(P) == 1               # ... come to the host exactly once
    assert sum(_FakeCupy.uploads) < 3 * P                  # uploads: Z, the hyperparameters, the start point
    k = max(np.size(getattr(on_cpu[0], f)) for f in ("sigma", "sigma1", "sigma2") if hasattr(on_cpu[0], f))
    assert max(c for c in _DeviceArray.copies if c != P) <= B * k * k   # per chunk: (B,), (B, k), (B, k, k) pieces
    for a, b in zip(on_gpu, on_cpu):
        assert a.loss == b.loss and a.n_iter == b.n_iter
        np.testing.assert_array_equal(a.history["kl_per_dim"], b.history["kl_per_dim"])


@pytest.mark.parametrize("model", ["vae", "cvae", "mhvae"])
def test_kernel_hyper_rows_lead_with_the_registry_axes_then_c2_and_eta_dec2(model):
    """The kernels' hyperparameter rows hold the registry's grid axes of the model, in order, then
    c² = (η_dec/η_enc)² and η_dec² (SPEC §2)."""
    from linvae import _models, train

    axes = _models.HYPER[model]
    columns = {k: np.array([1.5 + i, 0.25 + i]) for i, k in enumerate(axes)}
    columns.update(eta_enc=np.array([2.0, 0.5]), eta_dec=np.array([3.0, 0.2]))
    rows = train.hyper_rows(model, columns)
    expected = np.stack([columns[k] for k in axes] + [(columns["eta_dec"] / columns["eta_enc"]) ** 2,
                                                     columns["eta_dec"] ** 2], axis=1)
    np.testing.assert_array_equal(rows, expected)
