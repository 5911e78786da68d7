"""Public entry points: :func:`fit`, :func:`sweep` and :func:`predict_collapse`.

Each builds one validated :class:`linvae._spec.FitSpec` and hands it to the model registry
(:mod:`linvae._models`), which knows every model's closed form over a grid and its training.
"""
import os
from typing import Union

import numpy as np

from . import _models, _spec, theory
from ._spec import as_moments
from ._validation import check_bool
from .theory._common import to_host

__all__ = ["fit", "sweep", "predict_collapse", "CollapseTable", "SweepResult", "as_moments"]

#: the type of a fit result (for annotations)
FitResult = Union[theory.VAEFit, theory.CVAEFit, theory.MHVAEFit]

# as_moments stays importable from here (defined in linvae._spec)


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
    model : {"auto", "vae", "cvae", "mhvae"}, default "auto"
        ``"auto"``: CVAE if Y is given, else VAE.
    beta : float, default 1.0
        β, weight of the KL term (VAE, CVAE).
    beta1, beta2 : float, default 1.0
        β₁, β₂ of the MHVAE.
    eta_enc : float, default 1.0
        η_enc, standard deviation of the prior ``N(0, η_enc² I)``.
    eta_dec : float or "learnable", default 1.0
        η_dec, standard deviation of the Gaussian decoder. ``"learnable"`` (VAE, CVAE, closed form)
        picks the η_dec that maximises the mean β-ELBO (a one-dimensional profile over the closed
        forms; at β = 1 the VAE is then probabilistic PCA: see :mod:`linvae._learned_scale`);
        the result has ``eta_dec_learned = True``.
    latent_dim : int, optional
        Latent size (VAE: d₁, default dx; CVAE: d_z, default dy; MHVAE: both latents).
    latent_dims : (int, int), optional
        (d₁, d₂) of the MHVAE.
    sigma : "learnable", float or array_like, default "learnable"
        Encoder standard deviations σ of the VAE: learned (Thm 4) or fixed (Thm 1). The CVAE
        closed form (Thm 2) is for learnable σ only.
    sigma1 : float or "learnable", default 0.5
        Fixed σ₁ of the MHVAE (isotropic; 0.5 as in the paper's experiments), or ``"learnable"``
        (gradient solvers only).
    sigma2 : "learnable" or float, default "learnable"
        σ₂ of the MHVAE: learned (Thm 3) or fixed isotropic (Thm 5).
    solver : {"closed_form", "gd", "adam", "minibatch"}, default "closed_form"
        ``"closed_form"`` is exact and instant. ``"gd"`` / ``"adam"`` train by full-batch
        gradient descent on the moment matrices (``"gd"``: heavy-ball momentum 0.9, restarted
        whenever a step raises the loss, with a "bold driver" step size; the only way to study the MHVAE with both
        Σ₁ and Σ₂ learned, ``sigma1="learnable"``, which has no closed form). Plain GD is slow
        on MHVAEs whose optimum has large ω and small σ₂ (an ill-conditioned valley); use Adam
        there. ``"minibatch"`` (VAE, CVAE) trains on the raw data like the paper's scripts:
        Adam (lr 1e-3 by default), shuffled minibatches, reparameterized samples; it reaches
        the optimum only up to the stochastic noise of the final iterates.
    backend : {"auto", "numba", "numpy", "cupy"}, default "auto"
        Training backend: the Numba kernels, the array kernels on NumPy, or the CuPy GPU kernels
        (``pip install "linvae[cuda12]"``; results live on the device of the input, see Returns). ``"auto"`` picks
        CuPy when ``X`` is a CuPy array (its moments are then computed on the GPU), else Numba.
    lr : float, optional
        Learning rate (default: 3e-2 for Adam, 1e-3 for the minibatch Adam, a curvature
        estimate for GD).
    max_iter : int, default 20000
        Maximum number of optimizer steps (``"gd"``/``"adam"``; the minibatch solver runs
        ``epochs`` passes instead).
    tol : float, default 1e-12
        Stop when the relative loss change per step is ≤ ``tol`` (and ``gtol`` holds).
    gtol : float, default 1e-7
        Stop when the gradient norm is ≤ ``gtol · max(1, |L|)`` (and ``tol`` holds).
    seed : int, default 0
        Seed of the N(0, init_scale²) initialization of the data-coordinate matrices: one integer
        in [0, 2**63 − 1] (several seeds: :func:`sweep`). Checked for every solver.
    clip : float, default 0.0
        Clip gradients to this global norm (0: off).
    lr_decay : float, optional
        ``lr_t = lr / (1 + lr_decay·t)``; default 1e-2 for Adam (a constant-step Adam hovers
        around the optimum instead of converging), 0 for GD. The minibatch solver keeps its
        step constant, like the paper's scripts.
    init_scale : float, default 0.1
        Standard deviation of the initialization (the paper's 0.1).
    history_every : int, default 100
        Record loss and per-dim KL every this many steps (``result.history``; the minibatch
        solver records every epoch).
    progress : bool, default False
        Show a progress bar (needs tqdm).
    epochs : int, default 100
        Passes over the data (minibatch solver only).
    batch_size : int, default 128
        Minibatch size (minibatch solver only). A solver-specific option (``max_iter``, ``tol``,
        ``gtol``, ``history_every``, ``lr_decay`` for ``"gd"``/``"adam"``; ``epochs``,
        ``batch_size`` for ``"minibatch"``) given to a gradient solver that does not use it, at
        a value other than its default, raises ``ValueError`` instead of being ignored; the
        closed form ignores every training option.
    center : bool, default False
        Subtract the data means first. The paper's linear models have no bias, so the
        default uses uncentred second moments.
    rtol : float, optional
        Relative rank tolerance of the second-moment matrices (``_config.RANK_RTOL``), a number in
        [0, 1): modes of E[xxᵀ] with φ ≤ rtol·φ_max are dropped (the CVAE cuts x's range in
        column-equilibrated coordinates, so its answer does not depend on the scale of x's columns).
        θ are computed to the relative accuracy of the column-equilibrated moments; an
        :class:`~linvae.exceptions.IllConditionedWarning` says when a dropped mode would be active.
    dtype : {"float64", "float32"}, default "float64"
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
    def build(eta, data=X, target=Y, centred=center):
        return _spec.build(data, target, entry="fit", model=model, beta=beta, beta1=beta1, beta2=beta2,
                           eta_enc=eta_enc, eta_dec=eta, latent_dim=latent_dim, latent_dims=latent_dims, sigma=sigma,
                           sigma1=sigma1, sigma2=sigma2, solver=solver, backend=backend, lr=lr, max_iter=max_iter,
                           tol=tol, gtol=gtol, seed=seed, clip=clip, lr_decay=lr_decay, init_scale=init_scale,
                           history_every=history_every, progress=progress, epochs=epochs, batch_size=batch_size,
                           center=centred, rtol=rtol, dtype=dtype)

    if not _spec._is_learnable(eta_dec):
        return _on_input_device(_models.fit_configurations(build(eta_dec))[0], X, Y)
    from ._learned_scale import learn_eta_dec

    spec = build(1.0)                                   # validates everything else once (nothing is fitted)
    if spec.model not in ("vae", "cvae") or solver != "closed_form":
        raise ValueError(f"eta_dec='learnable' is computed by the closed form of the VAE and CVAE (a profile "
                         f"over η_dec); got model={spec.model!r}, solver={solver!r}")
    moments = spec.moments
    result = learn_eta_dec(lambda eta: _models.fit_configurations(build(eta, moments, None, False))[0], moments,
                           spec.model, spec.dims)
    return _on_input_device(result, X, Y)


def _on_input_device(result, X, Y=None):
    """Results live on the device their data came from: CuPy input gives CuPy arrays."""
    if _spec.on_device(X, Y):
        from ._backend import get_cupy

        cp = get_cupy()
        if isinstance(result, list):
            return [r.to_device(cp) for r in result]
        return result.to_device(cp)
    return result


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

    def to_dict(self, json_safe: bool = True) -> dict:
        """The summary table as a dict (see :meth:`CollapseTable.to_dict`), plus ``model``.

        Parameters
        ----------
        json_safe : bool, default True
            Lists and Python scalars (``json.dumps`` accepts the result); ``False`` gives arrays.

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
        atomically (``chunk-NNNNN.npz``: numeric arrays and a JSON header, never pickle), with a
        ``sweep.json`` manifest fingerprinting data and settings, and ``table.csv`` at the end; an interrupted sweep called again with the same
        arguments resumes with the missing chunks only. A directory holding a different sweep is
        refused (:class:`linvae.exceptions.SweepMismatchError`) unless ``overwrite=True``; a
        directory another live run is writing to raises
        :class:`linvae.exceptions.OutputLockedError`. Reload with :meth:`SweepResult.load`.
    chunk_size : int, optional
        Configurations per kernel call (one batch). Default: all of them in one chunk without
        ``out``/``scheduler``, else about a tenth of the grid.
    overwrite : bool, default False
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
    spec = _spec.build(X, Y, entry="sweep", model=model, beta=beta, beta1=beta1, beta2=beta2, eta_enc=eta_enc,
                       eta_dec=eta_dec, latent_dim=latent_dim, latent_dims=latent_dims, sigma=sigma, sigma1=sigma1,
                       sigma2=sigma2, solver=solver, backend=backend, lr=lr, max_iter=max_iter, tol=tol, gtol=gtol,
                       seed=seed, clip=clip, lr_decay=lr_decay, init_scale=init_scale, history_every=history_every,
                       progress=progress, epochs=epochs, batch_size=batch_size, center=center, rtol=rtol,
                       dtype=dtype)
    cols = spec.configurations()
    chunk_size, out = _spec.sweep_execution(len(cols["eta_enc"]), chunk_size, out, scheduler)
    from ._sweep import SweepSpec, run_chunks

    # the checkpoint manifest fingerprints the arguments as given; the chunks run ``spec``
    sweep_spec = SweepSpec(spec.moments, spec.model, spec.dims, sigma, sigma1, sigma2, spec.options, spec.rtol,
                           spec.raw, fit_spec=spec)
    results = run_chunks(sweep_spec, cols, chunk_size=chunk_size, out=out,
                         overwrite=check_bool(overwrite, "overwrite"), scheduler=scheduler, progress=progress)
    return SweepResult(spec.model, cols, _on_input_device(results, X, Y))


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

    def to_dict(self, json_safe: bool = True) -> dict:
        """Return the columns plus ``collapsed``, ``kl_per_dim`` (and ``sigma``) as a plain dict.

        Parameters
        ----------
        json_safe : bool, default True
            Lists and Python scalars, so that ``json.dumps`` accepts the result (non-finite floats
            become ``None``), plus ``model`` and ``theorem``; ``False`` gives NumPy arrays
            (``pandas.DataFrame`` accepts either form; see also :meth:`to_frame`).

        Returns
        -------
        dict
            Lists (arrays with ``json_safe=False``) keyed by column name.
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
        ``eta_dec="learnable"`` (VAE, CVAE): per (β, η_enc), the η_dec that maximises the
        β-ELBO, as in :func:`fit`; the table's ``eta_dec`` column holds the learned values.

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
    def build(data, target, eta, betas, eta_encs, centred):
        return _spec.build(data, target, entry="predict", model=model, beta=betas, beta1=beta1, beta2=beta2,
                           eta_enc=eta_encs, eta_dec=eta, latent_dim=latent_dim, latent_dims=latent_dims, sigma=sigma,
                           sigma1=sigma1, sigma2=sigma2, center=centred, rtol=rtol)

    if not _spec._is_learnable(eta_dec):
        return _predict(build(X, Y, eta_dec, beta, eta_enc, center))
    return _predict_learned_scale(build(X, Y, 1.0, beta, eta_enc, center), build, sigma)


def _predict_learned_scale(spec, build, sigma):
    """``predict_collapse(..., eta_dec="learnable")``: per (β, η_enc) of the grid, the prediction
    at the η_dec that maximises the β-ELBO (:func:`linvae._learned_scale.learn_eta_dec`); the
    table's ``eta_dec`` column holds the learned values."""
    from ._learned_scale import learn_eta_dec

    if spec.model not in ("vae", "cvae"):
        raise ValueError(f"eta_dec='learnable' is computed by the closed form of the VAE and CVAE; got "
                         f"model={spec.model!r}")
    moments, parts = spec.moments, []
    for b in spec.grid["beta"]:
        for e in spec.grid["eta_enc"]:
            learned = learn_eta_dec(lambda eta: fit(moments, model=spec.model, beta=float(b), eta_enc=float(e),
                                                    eta_dec=eta, latent_dim=spec.dims, sigma=sigma),
                                    moments, spec.model, spec.dims)
            parts.append(_predict(build(moments, None, learned.eta_dec, float(b), float(e), False)))
    first = parts[0]
    columns = {name: np.concatenate([p.columns[name] for p in parts]) for name in first.columns}
    sigmas = None if first.sigma is None else np.concatenate([p.sigma for p in parts])
    return CollapseTable(first.model, first.theorem, columns, np.concatenate([p.collapsed for p in parts]),
                         np.concatenate([p.kl_per_dim for p in parts]), sigma=sigmas)


def _predict(spec):
    """The collapse table of a prediction spec: the registry's vectorised closed form over the grid."""
    variant = spec.variant
    cols = spec.configurations()
    variant.warn_dropped(spec, cols)
    s = variant.spectra(spec, cols)
    collapsed = s["collapsed"]
    if variant.reports_dead:
        cols["n_dead"] = s["dead"].sum(axis=1).astype(np.int64)
    cols["n_collapsed"] = collapsed.sum(axis=1).astype(np.int64)
    cols["n_active"] = collapsed.shape[1] - cols["n_collapsed"]
    return CollapseTable(spec.model, variant.theorem, cols, collapsed, s["kl_per_dim"], sigma=s["sigma"])
