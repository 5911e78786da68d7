"""The validated specification of a fit, a sweep or a collapse prediction.

:func:`build` checks every argument once (model, latent sizes, variances, hyperparameters or
grids, solver and training options, backend, dtype, rtol, seed) and returns a frozen
:class:`FitSpec`. :func:`linvae.fit`, :func:`linvae.sweep`, :func:`linvae.predict_collapse`,
the estimators and the CLI build one; everything below it (the model registry
:mod:`linvae._models`, the closed forms, the training driver) trusts it and validates nothing.

Adding a training option: a field of :class:`linvae.train.TrainOptions`, its check in
:func:`_training_options`, the keyword of :func:`build`, and the public signatures and
docstrings that expose it (``fit``, ``sweep``, each forwarding it to :func:`build` by name).
"""
import dataclasses
import os
from typing import Mapping, Optional

import numpy as np

from . import _config, _models
from ._validation import (check_bool, check_choice, check_int, check_latent_dim, check_memory, check_nonneg,
                          check_positive, check_positive_grid, check_rtol, check_scale, check_seed, check_sigma)
from ._backend import CHOICES
from .stats import Moments

__all__ = ["FitSpec", "build", "as_moments", "SOLVERS", "BACKENDS", "MODELS", "DTYPES"]

MODELS = {"auto", *_models.MODELS}
SOLVERS = {"closed_form", "gd", "adam", "minibatch"}
BACKENDS = set(CHOICES)
DTYPES = {"float64", "float32"}
#: what is being specified: one configuration (fit), a grid to fit (sweep), a grid to predict
ENTRIES = {"fit", "sweep", "predict"}


@dataclasses.dataclass(frozen=True, eq=False)
class FitSpec:
    """A validated fit: the data's moments, one registry entry, the grid and the solver settings.

    Attributes
    ----------
    variant : linvae._models.Variant
        The model in its variance mode (closed form, training problem, kernel, result type).
    moments : Moments
    dims : int or (int, int)
        Latent size (VAE, CVAE) or (d₁, d₂) (MHVAE).
    grid : dict of str -> 1-D ndarray
        Hyperparameter axes in table order (``beta`` or ``beta1``, ``beta2`` [, ``sigma1`` for a
        prediction], ``eta_enc``, ``eta_dec``); one value each for a fit.
    seeds : 1-D int64 ndarray
    sigma : None or ndarray
        The VAE's fixed σ per latent dim (Thm 1); None when learnable or another model.
    sigma1, sigma2 : None or float
        The MHVAE's isotropic σ₁, σ₂; None when learnable (σ₁ on the grid for a prediction).
    solver : str
    options : linvae.train.TrainOptions or None
        Training settings; None for ``solver="closed_form"``.
    rtol : float or None
    raw : (ndarray, ndarray or None) or None
        The validated data of ``solver="minibatch"``.
    """

    variant: "_models.Variant"
    moments: Moments
    dims: object
    grid: Mapping[str, np.ndarray]
    seeds: np.ndarray
    sigma: Optional[np.ndarray]
    sigma1: Optional[float]
    sigma2: Optional[float]
    solver: str
    options: object
    rtol: Optional[float]
    raw: Optional[tuple] = None
    entry: str = "fit"

    @property
    def model(self):
        return self.variant.model

    @property
    def trains(self):
        """True for the gradient solvers (``options`` is set)."""
        return self.options is not None

    def configurations(self):
        """The outer product of the grid (first axis slowest) as flat columns, with ``seed`` when training.

        A grid whose table and results would not fit in the memory available is refused first
        (:func:`linvae._validation.check_memory`), naming its number of configurations.
        """
        axes = dict(self.grid)
        if self.trains:
            axes["seed"] = self.seeds
        n = int(np.prod([len(v) for v in axes.values()], dtype=object))
        if n > 1:
            k = sum(np.atleast_1d(self.dims))
            # per configuration, as measured (tracemalloc peaks): a prediction's table row and about
            # eight (k,) arrays of spectra and temporaries; a sweep's row and fitted result (its
            # matrices and ≈ 2 KiB of Python objects around them)
            per = 8 * (len(axes) + 6) + (8 * 8 * k if self.entry == "predict" else _RESULT_OVERHEAD
                                         + result_bytes(self.model, self.dims, self.moments.dx, self.moments.dy))
            first = next(iter(axes))
            check_memory(n * per, f"the grid of {n:,} configurations ({' × '.join(str(len(v)) for v in axes.values())}"
                         f" values of {', '.join(axes)})",
                         f"split the grid into parts that fit, e.g. one call per slice of {first} "
                         + (f"(predict_collapse(..., {first}=values[i:i + 1000]))" if self.entry == "predict" else
                            f"({first}=values[i:i + 1000]), each run in chunks checkpointed to disk: "
                            "sweep(..., out='sweep-dir', chunk_size=10_000)"))
        return outer(**axes)


#: bytes of Python objects around one fitted result of a sweep (measured: ≈ 2.1 KiB for a small VAE)
_RESULT_OVERHEAD = 2048


def result_bytes(model, dims, dx, dy):
    """Bytes of one fitted model's matrices (float64): the VAE's W, U; the CVAE's W₁, W₂, U₁, U₂;
    the MHVAE's W₁, U₁ and its z₁ ↔ z₂ matrices W₂ (d₂ × d₁) and U₂ (d₁ × d₂)."""
    if model == "mhvae":
        d1, d2 = dims
        entries = 2 * d1 * dx + 2 * d1 * d2 + d1 + d2
    elif model == "cvae":
        entries = dims * (dx + 2 * dy) + dy * dx + dims
    else:
        entries = 2 * dims * dx + dims
    return 8 * (int(entries) + 4 * int(np.sum(dims)))


def outer(**params):
    """Outer product of the given 1-D arrays -> dict of flat columns (first name varies slowest)."""
    names = list(params)
    # seeds stay int64 (a float column would round seeds above 2**53)
    mesh = np.meshgrid(*(np.asarray(params[n], dtype=np.int64 if n == "seed" else float) for n in names),
                       indexing="ij")
    return {n: m.ravel() for n, m in zip(names, mesh)}


# ------------------------------------------------------------------------------------------- data

def as_moments(X, Y=None, center=False):
    """Return :class:`Moments` for data arrays, or pass given moments through."""
    if isinstance(X, Moments):
        if Y is not None:
            raise ValueError("pass Y inside the Moments (Moments.from_arrays(X, Y)), not separately")
        if center and not X.centered:
            raise ValueError("center=True cannot centre precomputed Moments; build them with "
                             "Moments.from_arrays(X, center=True)")
        return X
    if _is_dask(X) or _is_dask(Y):
        from .stats import moments_from_dask

        da = __import__("dask.array", fromlist=["array"])
        return moments_from_dask(da.asarray(X), None if Y is None else da.asarray(Y), center=center)
    return Moments.from_arrays(X, Y, center=center)


def _is_dask(a):
    """True for ``dask.array.Array`` (checked without importing dask)."""
    return type(a).__module__.startswith("dask.") and hasattr(a, "to_delayed")


def on_device(X, Y=None):
    """True when the data are CuPy arrays (results then go back to the device)."""
    from ._backend import is_cupy

    return is_cupy(X) or is_cupy(Y)


def _raw_data(X, Y, solver, model, center):
    """The validated raw arrays the minibatch solver trains on (None for other solvers)."""
    if solver != "minibatch":
        return None
    if isinstance(X, Moments):
        raise ValueError("solver='minibatch' trains on the raw data: pass arrays X (and Y), not Moments")
    if not _models.facts(model).minibatch:
        raise ValueError("solver='minibatch' supports the VAE and CVAE; use solver='adam' for the MHVAE")
    from ._validation import check_data, check_pair

    if Y is None:
        Xv, Yv = check_data(X), None
    else:
        Xv, Yv = check_pair(X, Y)
    if center:
        Xv = Xv - Xv.mean(axis=0)
        Yv = None if Yv is None else Yv - Yv.mean(axis=0)
    return Xv, Yv


# ---------------------------------------------------------------------------- model and variances

def _resolve_model(model, moments):
    check_choice(model, "model", MODELS)
    if model == "auto":     # not a model: the CVAE when a target is given, else the VAE
        return "cvae" if moments.has_y else "vae"
    conditional = _models.is_conditional(model)
    if conditional and not moments.has_y:
        raise ValueError(f"model={model!r} needs the target Y: call fit(X, Y, ...)")
    if not conditional and moments.has_y:
        raise ValueError(f"model={model!r} takes no Y (Y is the CVAE target); drop Y or use model='cvae'")
    return model


def _latent_dims(two_latents, default, latent_dim, latent_dims):
    if two_latents:
        if latent_dims is None:
            d = default if latent_dim is None else check_latent_dim(latent_dim)
            return (d, d)
        if latent_dim is not None:
            raise ValueError("give either latent_dim or latent_dims for the MHVAE, not both")
        if np.ndim(latent_dims) != 1 or len(latent_dims) != 2:
            raise ValueError(f"latent_dims must be a pair (d1, d2), got {latent_dims!r}")
        return (check_latent_dim(latent_dims[0], "latent_dims[0]"),
                check_latent_dim(latent_dims[1], "latent_dims[1]"))
    if latent_dims is not None:
        raise ValueError("latent_dims=(d1, d2) is for model='mhvae'; use latent_dim for the VAE/CVAE")
    if latent_dim is None:
        return default
    return check_latent_dim(latent_dim)


def _is_learnable(value):
    return isinstance(value, str) and value == "learnable"


def _vae_sigma(sigma, sigma1, sigma2, dims, entry, closed_form):
    """VAE: σ learnable (Thm 4) or fixed per latent dim (Thm 1)."""
    return {"sigma": check_sigma(sigma, "sigma", dims)}, {}


def _cvae_sigma(sigma, sigma1, sigma2, dims, entry, closed_form):
    """CVAE: learnable σ only (Thm 2)."""
    if not _is_learnable(sigma):
        raise ValueError(
            f"the linear CVAE (Thm 2) is supported with learnable σ only; got sigma={sigma!r}. "
            "Use sigma='learnable'"
        )
    return {}, {}


def _mhvae_sigmas(sigma, sigma1, sigma2, dims, entry, closed_form):
    """MHVAE: σ₁ fixed (a grid axis of a prediction) or learnable (training only); σ₂ learnable or fixed."""
    axes = {}
    if entry == "predict":
        axes["sigma1"] = check_positive_grid(sigma1, "sigma1")
        for v in axes["sigma1"]:
            check_scale(float(v), "sigma1")
        s1 = float(axes["sigma1"][0])
    elif _is_learnable(sigma1):
        if closed_form:
            raise ValueError(
                "the MHVAE with both Σ₁ and Σ₂ learnable has no closed form; fix sigma1 to a "
                "positive number, or train it by gradient descent (solver='adam')"
            )
        s1 = None
    else:
        s1 = check_scale(sigma1, "sigma1")
    if isinstance(sigma2, str):
        check_sigma(sigma2, "sigma2", dims[1])
        return {"sigma1": s1, "sigma2": None}, axes
    return {"sigma1": s1, "sigma2": check_scale(sigma2, "sigma2")}, axes


#: per model: how its variance arguments are read and validated (its other facts, such as
#: whether it takes a target Y or two latent sizes, are its registry entry's: ``_models.facts``)
_VARIANCES = {"vae": _vae_sigma, "cvae": _cvae_sigma, "mhvae": _mhvae_sigmas}


# ------------------------------------------------------------------------------------ training

#: the training options that only some gradient solvers read: given to another one, a value
#: other than the default would be silently ignored, so :func:`build` refuses it
SOLVER_ONLY_OPTIONS = {
    "max_iter": ("gd", "adam"), "tol": ("gd", "adam"), "gtol": ("gd", "adam"),
    "history_every": ("gd", "adam"), "lr_decay": ("gd", "adam"),
    "epochs": ("minibatch",), "batch_size": ("minibatch",),
}


def _check_used_by(solver, given):
    """Refuse a solver-specific option given (other than its default) to a solver that ignores it
    (``lr_decay`` is None unless given; its TrainOptions default, 0, is what the others run with)."""
    from .train import TrainOptions

    for name, solvers in SOLVER_ONLY_OPTIONS.items():
        value = given[name]
        if solver not in solvers and value is not None and value != getattr(TrainOptions, name):
            runs = ("runs `epochs` passes of `batch_size` examples at a constant lr, without a stopping rule"
                    if solver == "minibatch" else "runs until tol/gtol or max_iter")
            raise ValueError(f"{name}={value!r} is not used by solver={solver!r}, which {runs}; {name} applies "
                             f"only to solver={' or '.join(map(repr, solvers))}; leave it at its default")


def _training_options(*, solver, backend, device_input, lr, max_iter, tol, gtol, seed, clip, lr_decay, init_scale,
                      history_every, progress, epochs, batch_size, dtype):
    """Validated :class:`linvae.train.TrainOptions` of a gradient solver."""
    from .train import TrainOptions

    max_iter, epochs, batch_size, history_every = (check_int(v, n) for v, n in (
        (max_iter, "max_iter"), (epochs, "epochs"), (batch_size, "batch_size"), (history_every, "history_every")))
    tol, gtol = check_nonneg(tol, "tol"), check_nonneg(gtol, "gtol")
    lr_decay = None if lr_decay is None else check_nonneg(lr_decay, "lr_decay")
    _check_used_by(solver, dict(max_iter=max_iter, tol=tol, gtol=gtol, history_every=history_every,
                                lr_decay=lr_decay, epochs=epochs, batch_size=batch_size))
    try:
        dtype = np.dtype(dtype).name
    except TypeError:
        dtype = repr(dtype)
    check_choice(dtype, "dtype", DTYPES)
    if dtype == "float32":
        tol, gtol = max(tol, _config.FLOAT32_TOL), max(gtol, _config.FLOAT32_GTOL)
    if solver == "minibatch" and (backend == "cupy" or (backend == "auto" and device_input)):
        raise ValueError("solver='minibatch' runs on the CPU (Numba); use solver='adam' or 'gd' with backend='cupy'")
    from ._backend import resolve

    backend = resolve(backend, device_input=device_input).name   # the install line when CuPy is missing
    return TrainOptions(
        solver=solver, lr=None if lr is None else check_positive(lr, "lr"),
        max_iter=max_iter, tol=tol, gtol=gtol, clip=check_nonneg(clip, "clip"),
        lr_decay=(_config.ADAM_LR_DECAY if solver == "adam" else 0.0) if lr_decay is None else lr_decay,
        init_scale=check_positive(init_scale, "init_scale"), seed=seed,
        history_every=history_every, progress=bool(progress),
        backend=backend, epochs=epochs, batch_size=batch_size, dtype=dtype,
    )


# ---------------------------------------------------------------------------------- the builder

def _scale_grid(value, name):
    """A grid of η values: positive, and each square a normal float64 (see ``check_scale``)."""
    grid = check_positive_grid(value, name)
    for v in grid:
        check_scale(float(v), name)
    return grid


def check_eta_ratio(eta_enc, eta_dec):
    """c² = (η_dec/η_enc)² enters the loss; it must be a normal float64 number."""
    from ._validation import SCALE_MAX, SCALE_MIN

    c = np.asarray(eta_dec, dtype=float) / np.asarray(eta_enc, dtype=float)
    bad = (c < SCALE_MIN) | (c > SCALE_MAX)
    if np.any(bad):
        i = int(np.flatnonzero(np.ravel(bad))[0])
        raise ValueError(f"eta_dec/eta_enc = {float(np.ravel(c)[i]):.3g} is out of range: c² = (η_dec/η_enc)² enters "
                         f"the loss and {'under' if np.ravel(c)[i] < SCALE_MIN else 'over'}flows float64; keep "
                         f"eta_dec/eta_enc within [{SCALE_MIN:.2g}, {SCALE_MAX:.2g}]")


def build(X, Y=None, *, entry, model="auto", beta=1.0, beta1=1.0, beta2=1.0, eta_enc=1.0, eta_dec=1.0,
          latent_dim=None, latent_dims=None, sigma="learnable", sigma1=0.5, sigma2="learnable",
          solver="closed_form", backend="auto", lr=None, max_iter=20000, tol=1e-12, gtol=1e-7, seed=0,
          clip=0.0, lr_decay=None, init_scale=0.1, history_every=100, progress=False, epochs=100,
          batch_size=128, center=False, rtol=None, dtype="float64") -> FitSpec:
    """Validate the arguments of :func:`linvae.fit` (``entry="fit"``), :func:`linvae.sweep`
    (``"sweep"``) or :func:`linvae.predict_collapse` (``"predict"``) once and return a :class:`FitSpec`.

    The keywords and defaults are those of :func:`linvae.fit`. With ``"sweep"`` and ``"predict"``
    the hyperparameters (and ``seed`` for a sweep, ``sigma1`` for a prediction) may be 1-D grids.
    Training options are checked only for the gradient solvers (the closed forms ignore them).

    Raises
    ------
    ValueError, TypeError
        A bad argument; the message names it, its value and what is allowed.
    """
    check_choice(entry, "entry", ENTRIES)
    grids = entry != "fit"
    if entry == "predict":
        solver = "closed_form"
    check_choice(solver, "solver", SOLVERS)
    check_choice(backend, "backend", BACKENDS)
    seeds = np.atleast_1d(check_seed(seed, allow_array=entry == "sweep")).astype(np.int64)
    if rtol is not None:
        rtol = check_rtol(rtol)
    center = check_bool(center, "center")
    progress = check_bool(progress, "progress")
    moments = as_moments(X, Y, center=center)
    model = _resolve_model(model, moments)
    raw = _raw_data(X, Y, solver, model, center)
    facts = _models.facts(model)
    if grids:
        etas = {"eta_enc": _scale_grid(eta_enc, "eta_enc"), "eta_dec": _scale_grid(eta_dec, "eta_dec")}
    else:
        etas = {"eta_enc": np.array([check_scale(eta_enc, "eta_enc")]),
                "eta_dec": np.array([check_scale(eta_dec, "eta_dec")])}
    check_eta_ratio(etas["eta_enc"][:, None], etas["eta_dec"][None, :])
    dims = _latent_dims(facts.two_latents, facts.default_dim(moments), latent_dim, latent_dims)
    if entry != "predict":
        shown = f"latent_dims={tuple(dims)}" if facts.two_latents else f"latent_dim={dims}"
        check_memory(2 * result_bytes(model, dims, moments.dx, moments.dy),
                     f"a fitted {model.upper()} with {shown} on {moments.dx} features (its matrices and their "
                     "temporaries)",
                     f"choose a smaller latent size: at most rank(E[xxᵀ]) ≤ {moments.dx} latent dimensions can be "
                     "active, the others are collapsed at every minimizer")
    given = {"beta": beta, "beta1": beta1, "beta2": beta2}
    _check_model_uses(model, facts, {**given, "sigma": sigma, "sigma1": sigma1, "sigma2": sigma2})
    grid = {name: check_positive_grid(given[name], name) if grids else np.array([check_positive(given[name], name)])
            for name in facts.hyper}
    closed_form = solver == "closed_form"
    variances, axes = _VARIANCES[model](sigma, sigma1, sigma2, dims, entry, closed_form)
    grid.update(axes)
    grid.update(etas)
    variances = {"sigma": None, "sigma1": None, "sigma2": None, **variances}
    variant = _models.lookup(model, **variances)
    options = None
    if not closed_form:
        options = _training_options(
            solver=solver, backend=backend, device_input=on_device(X, Y), lr=lr, max_iter=max_iter, tol=tol,
            gtol=gtol, seed=seed, clip=clip, lr_decay=lr_decay, init_scale=init_scale, history_every=history_every,
            progress=progress, epochs=epochs, batch_size=batch_size, dtype=dtype)
    return FitSpec(variant=variant, moments=moments, dims=dims, grid=grid, seeds=seeds, solver=solver,
                   options=options, rtol=rtol, raw=raw, entry=entry, **variances)


#: hyperparameters that only some models read, with the default every other model must leave them at
MODEL_ONLY_OPTIONS = {"beta": (("vae", "cvae"), 1.0), "sigma": (("vae", "cvae"), "learnable"),
                      "beta1": (("mhvae",), 1.0), "beta2": (("mhvae",), 1.0), "sigma1": (("mhvae",), 0.5),
                      "sigma2": (("mhvae",), "learnable")}


def _is_default(value, default):
    if isinstance(value, str) or isinstance(default, str):
        return isinstance(value, str) and value == default
    try:
        return bool(np.all(np.asarray(value, dtype=float) == default))
    except (TypeError, ValueError):
        return False


def _check_model_uses(model, facts, given):
    """Refuse a hyperparameter given (other than its default) to a model that does not read it
    (``fit(X, beta1=3)`` for a VAE, ``fit(X, model="mhvae", beta=3)``), as :func:`_check_used_by`
    does for the training options."""
    for name, (models, default) in MODEL_ONLY_OPTIONS.items():
        if model not in models and not _is_default(given[name], default):
            value = given[name]
            shown = value if isinstance(value, str) else np.asarray(value).tolist()
            raise ValueError(f"{name}={shown!r} is not used by model={model!r}; {name} applies only to "
                             f"model={' or '.join(map(repr, models))}; leave it at its default ({default!r})")


def sweep_execution(n, chunk_size, out, scheduler):
    """Validated ``(chunk_size, out)`` of a sweep of ``n`` configurations: ``chunk_size`` None is
    one chunk in memory, else about ten chunks (checkpoints or a scheduler); ``out`` a path or None."""
    if chunk_size is None:
        chunk_size = n if out is None and scheduler is None else max(1, -(-n // 10))
    chunk_size = check_int(chunk_size, "chunk_size")
    if out is not None and not isinstance(out, (str, os.PathLike)):
        raise TypeError(f"out must be a directory path (str or os.PathLike), got {out!r}")
    return chunk_size, None if out is None else os.fspath(out)


def for_chunk(sweep_spec, cols):
    """The :class:`FitSpec` of a sweep chunk: ``sweep_spec.fit_spec``, or, for a ``SweepSpec`` built
    by hand (arguments as given, no ``fit_spec``), one validated from its fields and the chunk's
    flat columns ``cols``."""
    if sweep_spec.fit_spec is not None:
        return sweep_spec.fit_spec
    s = sweep_spec
    two_latents = np.ndim(s.dims) == 1
    hyper = {k: np.unique(np.asarray(v, dtype=float)) for k, v in cols.items() if k != "seed"}
    spec = build(s.moments, entry="sweep", model=s.model, latent_dim=None if two_latents else s.dims,
                 latent_dims=tuple(s.dims) if two_latents else None, sigma=s.sigma, sigma1=s.sigma1, sigma2=s.sigma2,
                 rtol=s.rtol, solver="closed_form" if s.options is None else "adam",
                 seed=cols.get("seed", 0), **hyper)
    return dataclasses.replace(spec, options=s.options, raw=s.raw)
