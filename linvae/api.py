"""Public entry points: :func:`fit`, :func:`sweep` and :func:`predict_collapse`."""
import dataclasses
import os
from typing import Union

import numpy as np

from . import _config, _sweep, theory
from ._validation import (
    check_choice,
    check_int,
    check_nonneg,
    check_latent_dim,
    check_positive,
    check_positive_grid,
    check_rtol,
    check_scale,
    check_seed,
    check_sigma,
)
from ._conditioning import warn_cvae_dropped as _warn_cvae_dropped
from ._conditioning import warn_mhvae_dropped as _warn_mhvae_dropped
from ._conditioning import warn_vae_dropped as _warn_dropped
from .stats import Moments, cvae_residual, vae_spectrum
from .theory._common import pad, to_host

__all__ = ["fit", "sweep", "predict_collapse", "CollapseTable", "SweepResult", "as_moments"]

#: the type of a fit result (for annotations)
FitResult = Union[theory.VAEFit, theory.CVAEFit, theory.MHVAEFit]

MODELS = {"auto", "vae", "cvae", "mhvae"}
SOLVERS = {"closed_form", "gd", "adam", "minibatch"}
BACKENDS = {"auto", "numba", "numpy", "cupy"}


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


def _resolve_model(model, moments):
    check_choice(model, "model", MODELS)
    if model == "auto":
        return "cvae" if moments.has_y else "vae"
    if model == "cvae" and not moments.has_y:
        raise ValueError("model='cvae' needs the target Y: call fit(X, Y, ...)")
    if model in ("vae", "mhvae") and moments.has_y:
        raise ValueError(f"model={model!r} takes no Y (Y is the CVAE target); drop Y or use model='cvae'")
    return model


def _latent_dims(model, moments, latent_dim, latent_dims):
    if model == "mhvae":
        if latent_dims is None:
            d = moments.dx if latent_dim is None else check_latent_dim(latent_dim)
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
        return moments.dy if model == "cvae" else moments.dx
    return check_latent_dim(latent_dim)


def fit(X, Y=None, *, model="auto", beta=1.0, beta1=1.0, beta2=1.0, eta_enc=1.0, eta_dec=1.0,
        latent_dim=None, latent_dims=None, sigma="learnable", sigma1=0.5, sigma2="learnable",
        solver="closed_form", backend="auto", lr=None, max_iter=20000, tol=1e-12, gtol=1e-7,
        seed=0, clip=0.0, lr_decay=None, init_scale=0.1, history_every=100, progress=False,
        epochs=100, batch_size=128, center=False, rtol=None, dtype="float64") -> FitResult:
    """Fit a linear VAE, CVAE or two-latent MHVAE.

    Parameters
    ----------
    X : array_like of shape (N, dx) or Moments
        Data (the condition x for the CVAE), or precomputed :class:`~linvae.stats.Moments`.
    Y : array_like of shape (N, dy), optional
        Target of the CVAE. Given ⇒ CVAE.
    model : {"auto", "vae", "cvae", "mhvae"}
        ``"auto"``: CVAE if Y is given, else VAE.
    beta : float
        β, weight of the KL term (VAE, CVAE).
    beta1, beta2 : float
        β₁, β₂ of the MHVAE.
    eta_enc : float
        η_enc, standard deviation of the prior ``N(0, η_enc² I)``.
    eta_dec : float
        η_dec, standard deviation of the Gaussian decoder.
    latent_dim : int, optional
        Latent size (VAE: d₁, default dx; CVAE: d_z, default dy; MHVAE: both latents).
    latent_dims : (int, int), optional
        (d₁, d₂) of the MHVAE.
    sigma : "learnable", float or array_like
        Encoder standard deviations σ of the VAE: learned (Thm 4) or fixed (Thm 1). The CVAE
        closed form (Thm 2) is for learnable σ only.
    sigma1 : float
        Fixed σ₁ of the MHVAE (isotropic), default 0.5 as in the paper's experiments.
    sigma2 : "learnable" or float
        σ₂ of the MHVAE: learned (Thm 3) or fixed isotropic (Thm 5).
    solver : {"closed_form", "gd", "adam", "minibatch"}
        ``"closed_form"`` is exact and instant. ``"gd"`` / ``"adam"`` train by full-batch
        gradient descent on the moment matrices (the only way to study the MHVAE with both
        Σ₁ and Σ₂ learned, ``sigma1="learnable"``, which has no closed form). Plain GD is slow
        on MHVAEs whose optimum has large ω and small σ₂ (an ill-conditioned valley); use Adam
        there. ``"minibatch"`` (VAE, CVAE) trains on the raw data like the paper's scripts:
        Adam (lr 1e-3 by default), shuffled minibatches, reparameterized samples; it reaches
        the optimum only up to the stochastic noise of the final iterates.
    backend : {"auto", "numba", "numpy", "cupy"}
        Training backend: the Numba kernels, the NumPy reference, or the CuPy GPU kernels
        (``pip install "linvae[cuda12]"``; results come back as NumPy arrays). ``"auto"`` picks
        CuPy when ``X`` is a CuPy array (its moments are then computed on the GPU), else Numba.
    lr : float, optional
        Learning rate (default: 1e-2 for Adam, a curvature estimate for GD).
    max_iter : int
        Maximum number of optimizer steps.
    tol, gtol : float
        Stop when the relative loss change per step is ≤ ``tol`` and the gradient norm is
        ≤ ``gtol · max(1, |L|)``.
    seed : int
        Seed of the N(0, init_scale²) initialization of the data-coordinate matrices: one integer
        in [0, 2**63 − 1] (several seeds: :func:`sweep`). Checked for every solver.
    clip : float
        Clip gradients to this global norm (0: off).
    lr_decay : float, optional
        ``lr_t = lr / (1 + lr_decay·t)``; default 1e-2 for Adam (a constant-step Adam hovers
        around the optimum instead of converging), 0 for GD.
    init_scale : float
        Standard deviation of the initialization (the paper's 0.1).
    history_every : int
        Record loss and per-dim KL every this many steps (``result.history``).
    progress : bool
        Show a progress bar (needs tqdm).
    epochs, batch_size : int
        Minibatch solver only.
    center : bool, default False
        Subtract the data means first. The paper's linear models have no bias, so the
        default uses uncentred second moments.
    rtol : float, optional
        Relative rank tolerance of the second-moment matrices (``_config.RANK_RTOL``), a number in
        [0, 1): modes of E[xxᵀ] with φ ≤ rtol·φ_max are dropped (the CVAE cuts x's range in
        column-equilibrated coordinates, so its answer does not depend on the scale of x's columns).
        θ are computed to the relative accuracy of the column-equilibrated moments; an
        :class:`~linvae.exceptions.IllConditionedWarning` says when a dropped mode would be active.
    dtype : {"float64", "float32"}
        Precision of gradient training on the moment matrices (``"gd"``/``"adam"``; moments,
        closed forms and results are always float64). float32 halves memory traffic and runs
        at the float32 BLAS/GPU rate; its tolerances are looser: ``tol`` and ``gtol`` are raised
        to at least ``_config.FLOAT32_TOL`` (1e-7) and ``_config.FLOAT32_GTOL`` (1e-5), a dim
        counts as collapsed below ``_config.COLLAPSE_KL_TOL_FLOAT32`` (1e-4 nats) instead of
        1e-6, and a converged fit is within about 1e-5 of the closed-form loss (relative)
        instead of 1e-10 (``tests/test_train.py``).

    Returns
    -------
    VAEFit, CVAEFit or MHVAEFit
        Spectra (``theta``, ``omega``, ``lambda_``, ``sigma``), ``collapsed``, ``n_collapsed``,
        ``kl_per_dim``, ``loss`` and the parameter matrices in data coordinates. Arrays come back
        on the device of the input: CuPy arrays for CuPy ``X`` (``result.to_numpy()`` copies
        them to the host; the metrics accept either and return NumPy).

    Raises
    ------
    ValueError
        Bad arguments (the message names the argument); data whose second moments over- or
        underflow float64 (largest absolute value above about 1e153, or a non-zero column below
        1.5e-154; the message gives the scale and a power-of-two rescaling); η_enc, η_dec or
        η_dec/η_enc whose square is not a normal float64.
    TrainingDivergedError
        ``"gd"``, ``"adam"``, ``"minibatch"``: a loss or gradient became non-finite, or the loss
        exploded above ``L₀ + _config.DIVERGENCE_FACTOR·max(abs(L₀), 1)`` (factor 1e3, ``L₀`` the
        loss at the initialization; checked every ``history_every`` steps, or every epoch), or
        the trained parameters are not finite in float64. The message names the configuration
        and the step (or epoch).

    Notes
    -----
    Thm 1, Thm 4 (VAE), Thm 2 (CVAE), Thm 3, Thm 5 (MHVAE) of Dang et al. (ICLR 2024).

    Examples
    --------
    >>> import numpy as np, linvae
    >>> X = np.random.default_rng(0).normal(size=(200, 5)) * [3, 2, 1, 0.5, 0.1]
    >>> res = linvae.fit(X, beta=1.0, latent_dim=5)
    >>> res.n_collapsed
    3
    """
    return _on_input_device(_fit(**locals()), X, Y)


def _on_input_device(result, X, Y=None):
    """Results live on the device their data came from: CuPy input gives CuPy arrays."""
    if hasattr(X, "__cuda_array_interface__") or hasattr(Y, "__cuda_array_interface__"):
        from .kernels.gpu import get_cupy

        cp = get_cupy()
        if isinstance(result, list):
            return [r.to_device(cp) for r in result]
        return result.to_device(cp)
    return result


def _fit(X, Y=None, *, model="auto", beta=1.0, beta1=1.0, beta2=1.0, eta_enc=1.0, eta_dec=1.0,
         latent_dim=None, latent_dims=None, sigma="learnable", sigma1=0.5, sigma2="learnable",
         solver="closed_form", backend="auto", lr=None, max_iter=20000, tol=1e-12, gtol=1e-7,
         seed=0, clip=0.0, lr_decay=None, init_scale=0.1, history_every=100, progress=False,
         epochs=100, batch_size=128, center=False, rtol=None, dtype="float64"):
    check_choice(solver, "solver", SOLVERS)
    check_choice(backend, "backend", BACKENDS)
    seed = check_seed(seed)
    if rtol is not None:
        rtol = check_rtol(rtol)
    moments = as_moments(X, Y, center=center)
    model = _resolve_model(model, moments)
    raw = _raw_data(X, Y, solver, model, center)
    eta_enc = check_scale(eta_enc, "eta_enc")
    eta_dec = check_scale(eta_dec, "eta_dec")
    _check_eta_ratio(eta_enc, eta_dec)
    dims = _latent_dims(model, moments, latent_dim, latent_dims)
    if model == "mhvae":
        beta1 = check_positive(beta1, "beta1")
        beta2 = check_positive(beta2, "beta2")
    else:
        beta = check_positive(beta, "beta")
    if solver != "closed_form":
        if model == "mhvae" and not (isinstance(sigma1, str) and sigma1 == "learnable"):
            sigma1 = check_positive(sigma1, "sigma1")
        options = _train_options(solver, backend, lr, max_iter, tol, gtol, seed, clip, lr_decay,
                                 init_scale, history_every, progress, epochs, batch_size,
                                 hasattr(X, "__cuda_array_interface__"), dtype)
        grid = {"beta1": [beta1], "beta2": [beta2]} if model == "mhvae" else {"beta": [beta]}
        cols = _grid(**grid, eta_enc=[eta_enc], eta_dec=[eta_dec], seed=[seed])
        return _train_grid(moments, model, dims, cols, sigma, sigma1, sigma2, options, rtol, raw)[0]
    return _finite_loss(_closed_form(moments, model, dims, beta, beta1, beta2, eta_enc, eta_dec, sigma,
                                     sigma1, sigma2, rtol), eta_enc, eta_dec)


def _check_eta_ratio(eta_enc, eta_dec):
    """c² = (η_dec/η_enc)² enters the loss; it must be a normal float64 number."""
    from ._validation import SCALE_MAX, SCALE_MIN

    c = np.asarray(eta_dec, dtype=float) / np.asarray(eta_enc, dtype=float)
    bad = (c < SCALE_MIN) | (c > SCALE_MAX)
    if np.any(bad):
        i = int(np.flatnonzero(np.ravel(bad))[0])
        raise ValueError(f"eta_dec/eta_enc = {float(np.ravel(c)[i]):.3g} is out of range: c² = (η_dec/η_enc)² enters "
                         f"the loss and {'under' if np.ravel(c)[i] < SCALE_MIN else 'over'}flows float64; keep "
                         f"eta_dec/eta_enc within [{SCALE_MIN:.2g}, {SCALE_MAX:.2g}]")


def _finite_loss(result, eta_enc, eta_dec):
    """Refuse a closed-form result whose loss is not representable (the data and η scales disagree)."""
    if not np.isfinite(result.loss):
        raise ValueError(f"the loss at the optimum is {result.loss!r} in float64: the data scale "
                         f"(largest θ {float(np.max(to_host(result.data_theta), initial=0.0)):.3g}) and eta_dec "
                         f"= {eta_dec:.3g}, eta_enc = {eta_enc:.3g} are too far apart; rescale the data or the "
                         "η's by a power of two")
    return result


def _closed_form(moments, model, dims, beta, beta1, beta2, eta_enc, eta_dec, sigma, sigma1, sigma2, rtol):
    if model == "vae":
        sig = check_sigma(sigma, "sigma", dims)
        _warn_dropped(moments, rtol, beta, eta_enc, eta_dec)
        if sig is None:
            return theory.vae_learnable(moments, dims, beta, eta_enc, eta_dec, rtol)
        return theory.vae_fixed(moments, dims, sig, beta, eta_enc, eta_dec, rtol)
    if model == "cvae":
        _check_cvae_sigma(sigma)
        _warn_cvae_dropped(moments, rtol, beta, eta_dec)
        return theory.cvae_learnable(moments, dims, beta, eta_enc, eta_dec, rtol)
    if isinstance(sigma1, str) and sigma1 == "learnable":
        raise ValueError(
            "the MHVAE with both Σ₁ and Σ₂ learnable has no closed form; fix sigma1 to a "
            "positive number, or train it by gradient descent (solver='adam')"
        )
    s1 = check_positive(sigma1, "sigma1")
    s2 = None if isinstance(sigma2, str) else check_positive(sigma2, "sigma2")
    _warn_mhvae_dropped(moments, rtol, beta1, beta2, s1, s2, eta_enc, eta_dec)
    if s2 is None:
        check_sigma(sigma2, "sigma2", dims[1])
        return theory.mhvae_sigma2_learnable(moments, dims, beta1, beta2, s1, eta_enc, eta_dec, rtol)
    return theory.mhvae_fixed(moments, dims, beta1, beta2, s1, s2, eta_enc, eta_dec, rtol)


def _check_cvae_sigma(sigma):
    if not (isinstance(sigma, str) and sigma == "learnable"):
        raise ValueError(
            f"the linear CVAE (Thm 2) is supported with learnable σ only; got sigma={sigma!r}. "
            "Use sigma='learnable'"
        )


def _raw_data(X, Y, solver, model, center):
    """The validated raw arrays the minibatch solver trains on (None for other solvers)."""
    if solver != "minibatch":
        return None
    if isinstance(X, Moments):
        raise ValueError("solver='minibatch' trains on the raw data: pass arrays X (and Y), not Moments")
    if model == "mhvae":
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


def _train_options(solver, backend, lr, max_iter, tol, gtol, seed, clip, lr_decay, init_scale,
                   history_every, progress, epochs=100, batch_size=128, device_input=False, dtype="float64"):
    from .train import TrainOptions

    try:
        dtype = np.dtype(dtype).name
    except TypeError:
        dtype = repr(dtype)
    check_choice(dtype, "dtype", {"float64", "float32"})
    if dtype == "float32":
        tol = max(check_nonneg(tol, "tol"), _config.FLOAT32_TOL)
        gtol = max(check_nonneg(gtol, "gtol"), _config.FLOAT32_GTOL)

    epochs = check_int(epochs, "epochs")
    batch_size = check_int(batch_size, "batch_size")
    check_choice(backend, "backend", BACKENDS)
    if backend == "auto" and device_input:
        backend = "cupy"
    if backend == "cupy":
        if solver == "minibatch":
            raise ValueError("solver='minibatch' runs on the CPU (Numba); use solver='adam' or 'gd' with backend='cupy'")
        from .kernels.gpu import get_cupy

        get_cupy()   # clear error with the install line when CuPy or the GPU is missing
    if lr is not None:
        lr = check_positive(lr, "lr")
    check_seed(seed, allow_array=True)
    return TrainOptions(
        solver=solver, lr=lr, max_iter=check_int(max_iter, "max_iter"), tol=check_nonneg(tol, "tol"),
        gtol=check_nonneg(gtol, "gtol"), clip=check_nonneg(clip, "clip"),
        lr_decay=(1e-2 if solver == "adam" else 0.0) if lr_decay is None else check_nonneg(lr_decay, "lr_decay"), init_scale=check_positive(init_scale, "init_scale"),
        seed=seed, history_every=check_int(history_every, "history_every"), progress=bool(progress),
        backend="numba" if backend == "auto" else backend, epochs=epochs, batch_size=batch_size,
        dtype=dtype,
    )


def _train_grid(moments, model, dims, cols, sigma, sigma1, sigma2, options, rtol, raw=None):
    """Train the (already validated) configurations ``cols`` in one batched kernel call.

    ``cols`` holds flat, equally long columns of hyperparameters and ``seed``.
    """
    from .train import _MHVAEProblem, _NormalizedVAEProblem, train_batch, train_minibatch

    cols = {k: np.asarray(v) for k, v in cols.items()}
    options = dataclasses.replace(options, seed=cols.pop("seed").astype(np.int64))
    ee, ed = cols["eta_enc"], cols["eta_dec"]
    B = len(ee)
    c2 = (ed / ee) ** 2
    if model in ("vae", "cvae"):
        if model == "cvae":
            _check_cvae_sigma(sigma)
            fixed = None
        else:
            fixed = check_sigma(sigma, "sigma", dims)
        hyper = np.stack([cols["beta"], c2, ed**2], axis=1)
        learn = np.array([fixed is None])
        log_s = np.log(np.tile(fixed, (B, 1))) if fixed is not None else np.log(ee)[:, None] * np.ones(dims)
        configs = [dict(beta=cols["beta"][b], eta_enc=ee[b], eta_dec=ed[b], learn=fixed is None,
                        seed=int(options.seed[b])) for b in range(B)]
        if options.solver == "minibatch":
            return train_minibatch(raw[0], raw[1], model, moments, dims, configs, hyper, log_s, learn,
                                   options, options.epochs, options.batch_size)
        problem = _NormalizedVAEProblem(moments, model, dims, rtol, options.solver, ee)
        hyper = problem.scale_hyper(hyper)
    else:
        d1, d2 = dims
        learn1 = isinstance(sigma1, str)
        if learn1:
            check_choice(sigma1, "sigma1", {"learnable"})
        learn2 = isinstance(sigma2, str)
        if learn2:
            check_sigma(sigma2, "sigma2", d2)
        problem = _MHVAEProblem(moments, dims, rtol)
        hyper = np.stack([cols["beta1"], cols["beta2"], c2, ed**2], axis=1)
        learn = np.array([learn1, learn2])
        s1 = np.log(ee) if learn1 else np.full(B, np.log(check_positive(sigma1, "sigma1")))
        s2 = np.log(ee) if learn2 else np.full(B, np.log(check_positive(sigma2, "sigma2")))
        log_s = np.concatenate([s1[:, None] * np.ones(d1), s2[:, None] * np.ones(d2)], axis=1)
        configs = [dict(beta1=cols["beta1"][b], beta2=cols["beta2"][b], eta_enc=ee[b], eta_dec=ed[b],
                        learn1=learn1, learn2=learn2, seed=int(options.seed[b])) for b in range(B)]
    return train_batch(problem, configs, hyper, log_s, learn, options)


class SweepResult:
    """Results of :func:`sweep`: one fit result per configuration of the grid.

    Index it (``res[i]``) for a configuration's full result; ``table()`` gives the summary.

    Parameters
    ----------
    model : str
        ``"vae"``, ``"cvae"`` or ``"mhvae"``.
    columns : dict of str -> ndarray
        The hyperparameters of each configuration.
    results : list
        VAEFit / CVAEFit / MHVAEFit per configuration.

    Attributes
    ----------
    columns : dict of str -> ndarray
        The hyperparameters of each configuration.
    results : list
        VAEFit / CVAEFit / MHVAEFit per configuration.
    """

    def __init__(self, model, columns, results):
        self.model = model
        self.columns = columns
        self.results = results

    @classmethod
    def load(cls, out):
        """The complete sweep checkpointed in directory ``out`` (see ``sweep(out=...)``).

        Raises
        ------
        FileNotFoundError
            When ``out`` holds no sweep.
        ValueError
            When chunks are missing (the sweep was interrupted: call :func:`sweep` again with the
            same arguments to finish it).
        """
        from ._sweep import MANIFEST, load_checkpoints

        if not os.path.exists(os.path.join(out, MANIFEST)):
            raise FileNotFoundError(f"{out} holds no sweep ({MANIFEST} is missing)")
        manifest, done = load_checkpoints(out)
        missing = [i for i in range(len(manifest["chunks"])) if i not in done]
        if missing:
            raise ValueError(f"the sweep in {out} is incomplete: {len(missing)} of {len(manifest['chunks'])} "
                             "chunks missing; call linvae.sweep with the same arguments and out= to finish it")
        cols = {k: np.asarray(v) for k, v in manifest["columns"].items()}
        return cls(manifest["model"], cols, [r for i in sorted(done) for r in done[i]])

    def __len__(self):
        return len(self.results)

    def __getitem__(self, i):
        return self.results[i]

    def __iter__(self):
        return iter(self.results)

    def table(self) -> "CollapseTable":
        """Summarise the sweep as a :class:`CollapseTable`.

        Returns
        -------
        CollapseTable
            The hyperparameter columns, ``n_collapsed``, ``n_active``, ``loss`` (and ``n_iter``
            for trained fits), with per-dim ``collapsed``, ``kl_per_dim`` and ``sigma``.
        """
        cols = {k: np.asarray(v).copy() for k, v in self.columns.items()}
        collapsed = np.array([to_host(r.collapsed) for r in self.results])
        cols["n_collapsed"] = collapsed.sum(axis=1).astype(np.int64)
        cols["n_active"] = collapsed.shape[1] - cols["n_collapsed"]
        cols["loss"] = np.array([r.loss for r in self.results])
        if self.results[0].n_iter is not None:
            cols["n_iter"] = np.array([r.n_iter for r in self.results], dtype=np.int64)
        kl = np.array([to_host(r.kl_per_dim) for r in self.results])
        sigma = np.array([to_host(r.sigma) for r in self.results])
        return CollapseTable(self.model, self.results[0].theorem, cols, collapsed, kl, sigma=sigma)

    def to_frame(self, form: str = "long") -> "pandas.DataFrame":  # noqa: F821
        """The sweep as a pandas DataFrame (see :meth:`CollapseTable.to_frame`).

        Parameters
        ----------
        form : {"long", "wide"}, default "long"
            ``"long"``: one row per configuration × latent dim (``config``, the hyperparameters
            and summary columns, ``dim``, ``kl``, ``sigma``, ``collapsed``); ``"wide"``: one row
            per configuration.

        Returns
        -------
        pandas.DataFrame
            The table; ``df.attrs`` holds ``model`` and ``theorem``.
        """
        return self.table().to_frame(form)

    def to_dict(self, json_safe: bool = False) -> dict:
        """The summary table as a dict (see :meth:`CollapseTable.to_dict`), plus ``model``.

        Parameters
        ----------
        json_safe : bool, default False
            Give lists and Python scalars instead of arrays (``json.dumps`` accepts the result).

        Returns
        -------
        dict
            The table's columns, ``collapsed``, ``kl_per_dim``, ``sigma`` and ``model``.
        """
        out = self.table().to_dict(json_safe=json_safe)
        out["model"] = self.model
        return out

    def __str__(self):
        return str(self.table())

    def __repr__(self):
        return f"SweepResult(model={self.model!r}, n_configs={len(self)})"


def sweep(X, Y=None, *, model="auto", beta=1.0, beta1=1.0, beta2=1.0, eta_enc=1.0, eta_dec=1.0,
          latent_dim=None, latent_dims=None, sigma="learnable", sigma1=0.5, sigma2="learnable",
          seed=0, solver="closed_form", backend="auto", lr=None, max_iter=20000, tol=1e-12, gtol=1e-7,
          clip=0.0, lr_decay=None, init_scale=0.1, history_every=100, progress=False, epochs=100,
          batch_size=128, center=False, rtol=None, out=None, chunk_size=None, overwrite=False,
          scheduler=None, dtype="float64") -> "SweepResult":
    """Fit every point of a hyperparameter grid; gradient solvers train the grid in one batch.

    Takes the arguments of :func:`fit`; ``beta``, ``beta1``, ``beta2``, ``eta_enc``, ``eta_dec``
    and ``seed`` may be 1-D arrays and the grid is their outer product. The moments (and
    their eigendecomposition) are computed once.

    Parameters
    ----------
    X, Y, model, latent_dim, latent_dims, sigma, sigma1, sigma2, backend, lr, max_iter : see :func:`fit`
        The arguments of :func:`fit`, with the same meaning.
    tol, gtol, clip, lr_decay, init_scale, history_every, progress, epochs, batch_size : see :func:`fit`
        The arguments of :func:`fit`, with the same meaning.
    center, rtol, dtype : see :func:`fit`
        The arguments of :func:`fit`, with the same meaning.
    beta, beta1, beta2, eta_enc, eta_dec, seed : float or 1-D array_like
        Grid values; the sweep fits every point of their outer product.
    solver : {"closed_form", "gd", "adam", "minibatch"}, default "closed_form"
        As for :func:`fit` (the same default: the exact minimizers); ``"gd"``/``"adam"`` train
        the whole grid in one batched kernel call.
    out : str, optional
        Checkpoint directory. Each finished chunk of configurations is written there
        atomically (``chunk-NNNNN.pkl``, with a ``sweep.json`` manifest fingerprinting data and
        settings, and ``table.csv`` at the end); an interrupted sweep called again with the same
        arguments resumes with the missing chunks only. A directory holding a different sweep is
        refused (:class:`linvae.exceptions.SweepMismatchError`) unless ``overwrite=True``; a
        directory another live run is writing to raises
        :class:`linvae.exceptions.OutputLockedError`. Reload with :meth:`SweepResult.load`.
    chunk_size : int, optional
        Configurations per kernel call (one batch). Default: all of them in one chunk without
        ``out``/``scheduler``, else about a tenth of the grid.
    overwrite : bool
        Allow discarding another sweep's checkpoints in ``out``.
    scheduler : None, "threads", "processes", "local", str address or distributed.Client
        Where the chunks run: in this process (None, default) or on Dask; see
        :mod:`linvae.distributed` (needs ``pip install "linvae[distributed]"``).

    Returns
    -------
    SweepResult
        One fit result per configuration (``res[i]``), ``res.table()`` and ``res.to_frame()``.

    Notes
    -----
    With ``solver="closed_form"`` every point is the exact minimizer (Thm 1–5); with
    ``"gd"``/``"adam"`` the batched kernels train all points together (they reach
    the closed form).

    Examples
    --------
    >>> import numpy as np, linvae
    >>> X = np.random.default_rng(0).normal(size=(400, 4)) * [2, 1, 0.5, 0.25]
    >>> res = linvae.sweep(X, beta=[0.1, 1.0, 10.0], solver="closed_form")
    >>> res.table()["n_collapsed"].tolist()
    [1, 3, 4]
    """
    check_choice(solver, "solver", SOLVERS)
    check_choice(backend, "backend", BACKENDS)
    seeds = check_seed(seed, allow_array=True)
    if rtol is not None:
        rtol = check_rtol(rtol)
    moments = as_moments(X, Y, center=center)
    model = _resolve_model(model, moments)
    raw = _raw_data(X, Y, solver, model, center)
    dims = _latent_dims(model, moments, latent_dim, latent_dims)
    grid = {"eta_enc": _scale_grid(eta_enc, "eta_enc"), "eta_dec": _scale_grid(eta_dec, "eta_dec")}
    _check_eta_ratio(grid["eta_enc"][:, None], grid["eta_dec"][None, :])
    if model == "mhvae":
        grid = {"beta1": check_positive_grid(beta1, "beta1"), "beta2": check_positive_grid(beta2, "beta2"), **grid}
    else:
        grid = {"beta": check_positive_grid(beta, "beta"), **grid}
    from ._sweep import SweepSpec, run_chunks

    if solver == "closed_form":
        options = None
        cols = _grid(**grid)
    else:
        options = _train_options(solver, backend, lr, max_iter, tol, gtol, seed, clip, lr_decay, init_scale,
                                 history_every, progress, epochs, batch_size,
                                 hasattr(X, "__cuda_array_interface__"), dtype)
        cols = _grid(**grid, seed=seeds)
    n = len(cols["eta_enc"])
    if chunk_size is None:
        chunk_size = n if out is None and scheduler is None else max(1, -(-n // 10))
    chunk_size = check_int(chunk_size, "chunk_size")
    if out is not None and not isinstance(out, (str, os.PathLike)):
        raise TypeError(f"out must be a directory path (str or os.PathLike), got {out!r}")
    spec = SweepSpec(moments, model, dims, sigma, sigma1, sigma2, options, rtol, raw)
    results = run_chunks(spec, cols, chunk_size=chunk_size, out=None if out is None else os.fspath(out),
                         overwrite=bool(overwrite), scheduler=scheduler, progress=progress)
    return SweepResult(model, cols, _on_input_device(results, X, Y))


class CollapseTable:
    """Collapse predictions over a hyperparameter grid (one row per configuration).

    Parameters
    ----------
    model, theorem : str
        Model name and the theorem behind the prediction.
    columns : dict of str -> ndarray
        Hyperparameter and summary columns, one value per configuration.
    collapsed : ndarray of bool, shape (n_configs, latent)
        Per-dim collapse mask.
    kl_per_dim : ndarray, shape (n_configs, latent)
        Data-mean KL per dim, nats.
    sigma : array_like, shape (n_configs, latent), optional
        Encoder standard deviations σ per dim.

    Attributes
    ----------
    columns : dict of str -> ndarray
        Hyperparameter columns, ``n_collapsed``, ``n_active`` (and ``n_dead`` with fixed σ).
    collapsed : ndarray of bool, shape (n_configs, latent)
        Per-dim collapse mask.
    kl_per_dim : ndarray, shape (n_configs, latent)
        Data-mean KL of each latent dim at the optimum, nats.
    sigma : ndarray, shape (n_configs, latent), or None
        Encoder standard deviation σ of each latent dim (σ₂ for the MHVAE).
    model, theorem : str
        Model name and the theorem behind the prediction.
    """

    def __init__(self, model, theorem, columns, collapsed, kl_per_dim, sigma=None):
        self.model = model
        self.theorem = theorem
        self.columns = columns
        self.collapsed = collapsed
        self.kl_per_dim = kl_per_dim
        self.sigma = None if sigma is None else np.broadcast_to(np.asarray(sigma, dtype=float),
                                                                np.shape(collapsed)).copy()

    def __len__(self):
        return self.collapsed.shape[0]

    def __getitem__(self, name):
        """A column by name (``table["n_collapsed"]``) or a row by position (``table[3]``, a dict)."""
        if isinstance(name, (int, np.integer)) and not isinstance(name, (bool, np.bool_)):
            n = len(self)
            if not -n <= name < n:
                raise IndexError(f"row {name} is out of range for a table of {n} configurations")
            row = {k: v[name].item() for k, v in self.columns.items()}
            row["collapsed"] = self.collapsed[name].copy()
            row["kl_per_dim"] = self.kl_per_dim[name].copy()
            if self.sigma is not None:
                row["sigma"] = self.sigma[name].copy()
            return row
        return self.columns[name]

    def to_dict(self, json_safe: bool = False) -> dict:
        """Return the columns plus ``collapsed``, ``kl_per_dim`` (and ``sigma``) as a plain dict.

        Parameters
        ----------
        json_safe : bool, default False
            Give lists and Python scalars instead of NumPy arrays, so that ``json.dumps``
            accepts the result (non-finite floats become ``None``), plus ``model`` and ``theorem``.

        Returns
        -------
        dict
            Arrays (or lists with ``json_safe=True``) keyed by column name.
        """
        out = {k: v.copy() for k, v in self.columns.items()}
        out["collapsed"] = self.collapsed.copy()
        out["kl_per_dim"] = self.kl_per_dim.copy()
        if self.sigma is not None:
            out["sigma"] = self.sigma.copy()
        if json_safe:
            from ._tables import jsonable

            return jsonable({**out, "model": self.model, "theorem": self.theorem})
        return out

    def to_frame(self, form: str = "long") -> "pandas.DataFrame":  # noqa: F821
        """The table as a pandas DataFrame (pandas is imported here; ``pip install "linvae[pandas]"``).

        Parameters
        ----------
        form : {"long", "wide"}, default "long"
            ``"long"`` (tidy): one row per configuration × latent dim, with ``config`` (the row
            of this table), every column of the table, ``dim``, ``kl`` (nats), ``sigma`` (encoder
            standard deviation; NaN when unknown) and ``collapsed``. ``"wide"``: one row per
            configuration, with ``kl_i``, ``sigma_i``, ``collapsed_i`` for each dim i.

        Returns
        -------
        pandas.DataFrame
            ``df.attrs`` holds ``model`` and ``theorem``; :meth:`from_frame` inverts the long form.
        """
        from ._tables import long_frame, wide_frame
        from ._validation import check_choice

        check_choice(form, "form", {"long", "wide"})
        make = long_frame if form == "long" else wide_frame
        return make(self.model, self.theorem, self.columns, self.collapsed, self.kl_per_dim, self.sigma)

    @classmethod
    def from_frame(cls, df: "pandas.DataFrame") -> "CollapseTable":  # noqa: F821
        """Rebuild a table from the long DataFrame of :meth:`to_frame`.

        Parameters
        ----------
        df : pandas.DataFrame
            Output of ``to_frame()`` (possibly read back from CSV; ``model``/``theorem`` come
            from ``df.attrs`` when present).

        Returns
        -------
        CollapseTable
            The same columns, masks and KL values.
        """
        from ._tables import from_long_frame

        model, theorem, columns, collapsed, kl, sigma = from_long_frame(df)
        return cls(model, theorem, columns, collapsed, kl, sigma=sigma)

    def __str__(self):
        names = list(self.columns)
        rows = [[_fmt(self.columns[n][i]) for n in names] for i in range(len(self))]
        widths = [max(len(n), *(len(r[j]) for r in rows)) for j, n in enumerate(names)]
        head = "  ".join(n.rjust(w) for n, w in zip(names, widths))
        lines = [f"{self.model.upper()} collapse prediction ({self.theorem}), latent size "
                 f"{self.collapsed.shape[1]}", head, "-" * len(head)]
        lines += ["  ".join(v.rjust(w) for v, w in zip(r, widths)) for r in rows]
        return "\n".join(lines)

    def __repr__(self):
        return f"CollapseTable(model={self.model!r}, n_configs={len(self)})"


def _fmt(v):
    if isinstance(v, (np.integer, int)):
        return str(int(v))
    return f"{float(v):.4g}"


def _scale_grid(value, name):
    """A grid of η values: positive, and each square a normal float64 (see ``check_scale``)."""
    grid = check_positive_grid(value, name)
    for v in grid:
        check_scale(float(v), name)
    return grid


def _grid(**params):
    """Outer product of the given 1-D arrays -> dict of flat columns (first name varies slowest)."""
    names = list(params)
    # seeds stay int64 (a float column would round seeds above 2**53)
    mesh = np.meshgrid(*(np.asarray(params[n], dtype=np.int64 if n == "seed" else float) for n in names),
                       indexing="ij")
    return {n: m.ravel() for n, m in zip(names, mesh)}


def predict_collapse(X, Y=None, *, model="auto", beta=1.0, beta1=1.0, beta2=1.0, eta_enc=1.0,
                     eta_dec=1.0, latent_dim=None, latent_dims=None, sigma="learnable", sigma1=0.5,
                     sigma2="learnable", center=False, rtol=None) -> "CollapseTable":
    """Predict which latent dims collapse, for a grid of hyperparameters, before any training.

    Takes the arguments of :func:`fit`; ``beta``, ``beta1``, ``beta2``, ``eta_enc``, ``eta_dec``
    (and ``sigma1`` for the MHVAE) may be 1-D arrays, and the table holds one row per point of
    their outer product. The eigendecomposition of the data is computed once for the grid.

    Parameters
    ----------
    X, Y, model, latent_dim, latent_dims, sigma, sigma2, center, rtol : see :func:`fit`
        The arguments of :func:`fit`, with the same meaning.
    beta, beta1, beta2, eta_enc, eta_dec, sigma1 : float or 1-D array_like
        Hyperparameter values; the table holds one row per point of their outer product.

    Returns
    -------
    CollapseTable
        One row per configuration: the hyperparameters, ``n_collapsed``, ``n_active``, and the
        per-dim ``collapsed``, ``kl_per_dim`` and ``sigma`` (``to_frame()`` for pandas).

    Notes
    -----
    Thm 4 / Thm 1 (VAE), Thm 2 (CVAE), Thm 3 / Thm 5 (MHVAE): a dim is collapsed when its
    posterior equals the prior ``N(0, η_enc²)`` for every input (KL ≡ 0).

    Examples
    --------
    >>> import numpy as np, linvae
    >>> X = np.random.default_rng(0).normal(size=(500, 4)) * [2, 1, 0.5, 0.25]
    >>> table = linvae.predict_collapse(X, beta=[0.1, 1, 10])
    >>> table["n_collapsed"].tolist()
    [1, 3, 4]
    """
    moments = as_moments(X, Y, center=center)
    model = _resolve_model(model, moments)
    dims = _latent_dims(model, moments, latent_dim, latent_dims)
    if rtol is not None:
        rtol = check_rtol(rtol)
    eta_enc_g = _scale_grid(eta_enc, "eta_enc")
    eta_dec_g = _scale_grid(eta_dec, "eta_dec")
    _check_eta_ratio(eta_enc_g[:, None], eta_dec_g[None, :])
    if model in ("vae", "cvae"):
        cols = _grid(beta=check_positive_grid(beta, "beta"), eta_enc=eta_enc_g, eta_dec=eta_dec_g)
        b, ee, ed = (cols[k][:, None] for k in ("beta", "eta_enc", "eta_dec"))
        if model == "cvae":
            _check_cvae_sigma(sigma)
            _warn_cvae_dropped(moments, rtol, b, ed)
            theta = pad(cvae_residual(moments, rtol)[2], dims)[None, :]
            _, lam, sig, collapsed = theory.thm2_spectra(theta, b, ee, ed)
            theorem = "Thm 2"
        else:
            theta_modes = pad(vae_spectrum(moments, rtol)[0], dims)
            fixed = check_sigma(sigma, "sigma", dims)
            _warn_dropped(moments, rtol, b, ee, ed)
            if fixed is None:
                _, lam, sig, collapsed = theory.thm4_spectra(theta_modes[None, :], b, ee, ed)
                theorem = "Thm 4"
            else:
                rank_of = theory.thm1_pairing(fixed)
                _, lam, dead = theory.thm1_spectra(theta_modes[rank_of][None, :], fixed[None, :], b, ee, ed)
                sig = np.broadcast_to(fixed, lam.shape)
                collapsed = theory.prior_collapse(dead, sig, ee)
                cols["n_dead"] = dead.sum(axis=1).astype(np.int64)
                theorem = "Thm 1"
        kl = theory.dim_kl(lam**2, sig, ee, collapsed)
    else:
        grid = dict(beta1=check_positive_grid(beta1, "beta1"), beta2=check_positive_grid(beta2, "beta2"),
                    sigma1=check_positive_grid(sigma1, "sigma1"), eta_enc=eta_enc_g, eta_dec=eta_dec_g)
        cols = _grid(**grid)
        b1, b2, s1, ee, ed = (cols[k][:, None] for k in grid)
        d1, d2 = dims
        _warn_mhvae_dropped(moments, rtol, b1, b2, s1, None if isinstance(sigma2, str) else
                            check_positive(sigma2, "sigma2"), ee, ed)
        theta = pad(vae_spectrum(moments, rtol)[0], d1)[None, :]
        paired = (np.arange(d1) < d2)[None, :]
        npair = min(d1, d2)
        omega = np.zeros((len(b1), d2))
        if isinstance(sigma2, str):
            check_sigma(sigma2, "sigma2", d2)
            lam, om_modes, _, _ = theory.thm3_spectra(theta, paired, b1, b2, s1, ee, ed)
            theorem = "Thm 3"
            omega[:, :npair] = om_modes[:, :npair]
            sig2 = theory.thm3_sigma2(omega, b1, b2, ee, ed)
        else:
            s2 = check_positive(sigma2, "sigma2")
            lam, om_modes = theory.thm5_spectra(theta, paired, b1, b2, s1, s2, ee, ed)
            theorem = "Thm 5"
            omega[:, :npair] = om_modes[:, :npair]
            sig2 = np.full(omega.shape, s2)
        _, dead, collapsed, kl = theory.z2_statistics(omega, lam, s1, sig2, b1, b2, ee, ed, npair)
        if theorem == "Thm 5":
            cols["n_dead"] = dead.sum(axis=1).astype(np.int64)
    cols["n_collapsed"] = collapsed.sum(axis=1).astype(np.int64)
    cols["n_active"] = collapsed.shape[1] - cols["n_collapsed"]
    return CollapseTable(model, theorem, cols, collapsed, kl, sigma=sig if model != "mhvae" else sig2)


# run_chunk of the sweep engine calls back into these (see _sweep._FITTERS: no import cycle)
_sweep.install_fitters(fit=fit, train_grid=_train_grid)
