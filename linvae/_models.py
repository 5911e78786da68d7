"""The model registry: one object per model and variance mode.

======================  ===========  ==================  ===============  ===============
registry key            theorem      training problem    kernel family    result type
======================  ===========  ==================  ===============  ===============
vae/learnable           Thm 4        _VAEProblem         vae              VAEFit
vae/fixed               Thm 1        _VAEProblem         vae              VAEFit
cvae/learnable          Thm 2        _CVAEProblem        vae              CVAEFit
mhvae/sigma2-learnable  Thm 3        _MHVAEProblem       mhvae            MHVAEFit
mhvae/fixed             Thm 5        _MHVAEProblem       mhvae            MHVAEFit
mhvae/sigma1-learnable  (none)       _MHVAEProblem       mhvae            MHVAEFit
======================  ===========  ==================  ===============  ===============

Each entry knows its closed form over a whole hyperparameter grid (the data's decomposition is
computed once, the spectra of every configuration in one vectorised pass, :mod:`linvae.theory`),
its ill-conditioning warning, and how to set up its whitened training problem
(:mod:`linvae.train`) with the kernels' hyperparameter rows. :func:`linvae.fit`, the
closed-form :func:`linvae.sweep` and :func:`linvae.predict_collapse` all go through
:func:`fit_configurations` / :meth:`Variant.spectra`; nothing else dispatches on the model name.

Each entry also carries its model's facts (``conditional``, ``two_latents``, ``default_dim``),
which every mode of a model shares and :mod:`linvae._spec` reads through
:func:`facts` before the variance mode is known, and it resolves its training problem class
(``train.PROBLEMS``), its parameter layout (``contract.LAYOUTS``) and its kernel entry
(``kernels.entry``) through :attr:`Variant.family`.

Adding a model: write its closed form in :mod:`linvae.theory` (``*_spectra`` vectorised over
rows, ``*_fits`` assembling the results), its problem in :mod:`linvae.train` (and its
``PROBLEMS`` entry), one :class:`Variant` subclass here with its entries in :data:`REGISTRY`
and ``HYPER``, and how :mod:`linvae._spec` reads its variances (``_VARIANCES``).
"""
import dataclasses
from typing import Callable, Optional, Tuple

import numpy as np

from . import _config, theory
from .kernels.contract import HYPER   # each model's grid axes before η_enc, η_dec (the kernels' leading columns)
from .theory._common import to_host

__all__ = ["Variant", "REGISTRY", "lookup", "facts", "is_conditional", "fit_configurations", "MODELS", "HYPER"]

#: the model names of the public API
MODELS = ("vae", "cvae", "mhvae")


@dataclasses.dataclass(frozen=True)
class Variant:
    """One model in one variance mode: its closed form, training problem, kernel and result type.

    Attributes
    ----------
    model : {"vae", "cvae", "mhvae"}
    mode : str
        The variance mode (``"learnable"``, ``"fixed"``, ``"sigma2-learnable"``, ``"sigma1-learnable"``).
    theorem : str or None
        The theorem of its closed form; None when it has none (training only).
    hyper : tuple of str
        Its own hyperparameters besides η_enc, η_dec (the grid columns before ``eta_enc``).
    result_type : type
        ``VAEFit``, ``CVAEFit`` or ``MHVAEFit``.
    conditional : bool
        The model takes a target Y besides X.
    two_latents : bool
        Latent sizes are a pair ``latent_dims=(d1, d2)``.
    default_dim : callable
        ``Moments -> int``: the latent size when none is given (the first one for two latents).
    reports_dead : bool
        Fixed variances: a dead (zero) encoder row is not collapse, so tables count ``n_dead``.
    """

    model: str
    mode: str
    theorem: Optional[str]
    hyper: Tuple[str, ...]
    result_type: type
    conditional: bool
    two_latents: bool
    default_dim: Callable
    reports_dead: bool = False

    @property
    def key(self):
        """Registry key ``"model/mode"``."""
        return f"{self.model}/{self.mode}"

    @property
    def has_closed_form(self):
        return self.theorem is not None

    @property
    def problem(self):
        """Its whitened training problem class (``train.PROBLEMS``; imported on first use)."""
        from .train import PROBLEMS

        return PROBLEMS[self.model]

    @property
    def family(self):
        """Its kernel family (``"vae"`` or ``"mhvae"``): the key of its layout and kernel entries."""
        return self.problem.family

    @property
    def minibatch(self):
        """Whether ``solver="minibatch"`` trains it: the raw-data kernel covers the ``"vae"`` family."""
        return self.family == "vae"

    @property
    def layout(self):
        """The blocks of its packed parameter vector (``kernels.contract.LAYOUTS``)."""
        from .kernels.contract import LAYOUTS

        return LAYOUTS[self.family]

    def kernel(self, backend):
        """Its kernel entry on ``backend`` (``"numba"``, ``"numpy"``, ``"cupy"``)."""
        from .kernels import entry

        return entry(backend, self.family)

    # -- closed form ----------------------------------------------------------------------------
    def spectra(self, spec, cols):
        """Per-dim optimum of every configuration in ``cols`` (arrays with one row each).

        Returns a dict with at least ``collapsed``, ``kl_per_dim``, ``sigma`` (the σ that
        collapses) and ``dead``.
        """
        raise NotImplementedError

    def closed_forms(self, spec, cols):
        """Exact minimizers of the configurations ``cols``: a list of :attr:`result_type`."""
        raise NotImplementedError

    def warn_dropped(self, spec, cols):
        """:class:`~linvae.exceptions.IllConditionedWarning` when a dropped mode matters here."""

    # -- training -------------------------------------------------------------------------------
    def label_trained(self, results):
        """Trained results, labelled with the theorem whose optimum they should reach."""
        label = f"trained ({self.theorem or 'no closed form'})"
        return [dataclasses.replace(r, theorem=label) for r in results]

    def train(self, spec, cols):
        """Train the (validated) configurations ``cols`` (flat columns with ``seed``) in one batch:
        this model's problem and kernel rows (:func:`linvae.train.train_vae_grid` or
        :func:`linvae.train.train_mhvae_grid`)."""
        raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class _VAE(Variant):
    """Linear VAE: learnable Σ (Thm 4) or fixed Σ (Thm 1)."""

    def train(self, spec, cols):
        from .train import train_vae_grid

        return self.label_trained(train_vae_grid(spec.moments, self.model, spec.dims, cols, spec.options,
                                                 sigma=spec.sigma, rtol=spec.rtol, raw=spec.raw))

    def spectra(self, spec, cols):
        theta_modes = theory.vae_basis(spec.moments, spec.dims, spec.rtol)[1]
        return theory.vae_spectra(theta_modes, spec.sigma, cols["beta"], cols["eta_enc"], cols["eta_dec"])

    def closed_forms(self, spec, cols):
        return theory.vae_fits(spec.moments, spec.dims, spec.sigma, cols["beta"], cols["eta_enc"], cols["eta_dec"],
                               spec.rtol)

    def warn_dropped(self, spec, cols):
        """Thm 4's threshold decides whether a dropped mode would be active (see ``warn_if_dropped_matters``)."""
        from ._conditioning import warn_if_dropped_matters

        beta, ee, ed = (np.reshape(cols[k], (-1, 1)) for k in ("beta", "eta_enc", "eta_dec"))

        def active(theta):
            return ~theory.thm4_spectra(theta[None, :], beta, ee, ed)[3]

        warn_if_dropped_matters(spec.moments, active, spec.rtol)

@dataclasses.dataclass(frozen=True)
class _CVAE(_VAE):
    """Linear CVAE with learnable Σ (Thm 2)."""

    def spectra(self, spec, cols):
        theta_modes = theory.cvae_basis(spec.moments, spec.dims, spec.rtol)[2]
        s = theory.cvae_spectra(theta_modes, cols["beta"], cols["eta_enc"], cols["eta_dec"])
        s["dead"] = s["collapsed"]
        return s

    def closed_forms(self, spec, cols):
        return theory.cvae_fits(spec.moments, spec.dims, cols["beta"], cols["eta_enc"], cols["eta_dec"], spec.rtol)

    def warn_dropped(self, spec, cols):
        """Ill-conditioning that changes E where Thm 2 sees it (see ``warn_if_cvae_drop_matters``)."""
        from ._conditioning import warn_if_cvae_drop_matters

        warn_if_cvae_drop_matters(spec.moments, float(np.min(np.asarray(cols["beta"]) * np.asarray(cols["eta_dec"]) ** 2)),
                                  spec.rtol)


@dataclasses.dataclass(frozen=True)
class _MHVAE(Variant):
    """Two-latent MHVAE: Thm 3 (σ₂ learnable), Thm 5 (σ₂ fixed), or σ₁ learnable (training only)."""

    def train(self, spec, cols):
        from .train import train_mhvae_grid

        return self.label_trained(train_mhvae_grid(spec.moments, spec.dims, cols, spec.options, sigma1=spec.sigma1,
                                                   sigma2=spec.sigma2, rtol=spec.rtol))

    @staticmethod
    def _sigma1(spec, cols):
        return cols["sigma1"] if "sigma1" in cols else spec.sigma1

    def spectra(self, spec, cols):
        theta = theory.vae_basis(spec.moments, spec.dims[0], spec.rtol)[1]
        s = theory.mhvae_spectra(theta, spec.dims, cols["beta1"], cols["beta2"], self._sigma1(spec, cols), spec.sigma2,
                                 cols["eta_enc"], cols["eta_dec"])
        s["sigma"] = s["sigma2"]
        return s

    def closed_forms(self, spec, cols):
        return theory.mhvae_fits(spec.moments, spec.dims, cols["beta1"], cols["beta2"], self._sigma1(spec, cols),
                                 spec.sigma2, cols["eta_enc"], cols["eta_dec"], spec.rtol)

    def warn_dropped(self, spec, cols):
        """Warn when ill-conditioning drops a mode whose θ Thm 3/5 would use (see ``active`` below)."""
        from ._conditioning import warn_if_dropped_matters

        grid = [np.reshape(a, (-1, 1)) for a in (cols["beta1"], cols["beta2"], self._sigma1(spec, cols),
                                                 cols["eta_enc"], cols["eta_dec"])]
        sigma2 = spec.sigma2

        def spectra(theta):
            paired = np.ones((1, theta.size), bool)
            if sigma2 is None:
                return theory.thm3_spectra(theta[None, :], paired, *grid)[:2]
            return theory.thm5_spectra(theta[None, :], paired, *grid[:3], sigma2, *grid[3:])

        def active(theta):
            # the drop matters when treating θ as 0 changes the optimum: a live z₁ encoder (λ > 0)
            # or a z₂ path that depends on θ (in Thm 3's case A, ω > 0 even for θ = 0)
            lam, omega = spectra(theta)
            omega0 = spectra(np.zeros_like(theta))[1]
            return (lam > 0) | ~np.isclose(omega, omega0, rtol=_config.ROUNDOFF_RTOL, atol=0.0)

        warn_if_dropped_matters(spec.moments, active, spec.rtol)

def _dx(moments):
    return moments.dx


def _dy(moments):
    return moments.dy


#: the facts of each model, shared by its variance modes
_VAE_KW = dict(model="vae", hyper=HYPER["vae"], result_type=theory.VAEFit, conditional=False, two_latents=False,
               default_dim=_dx)
_CVAE_KW = dict(model="cvae", hyper=HYPER["cvae"], result_type=theory.CVAEFit, conditional=True,
                two_latents=False, default_dim=_dy)
_MH_KW = dict(model="mhvae", hyper=HYPER["mhvae"], result_type=theory.MHVAEFit, conditional=False,
              two_latents=True, default_dim=_dx)

#: every model × variance mode, by ``"model/mode"``
REGISTRY = {v.key: v for v in (
    _VAE(mode="learnable", theorem="Thm 4", **_VAE_KW),
    _VAE(mode="fixed", theorem="Thm 1", reports_dead=True, **_VAE_KW),
    _CVAE(mode="learnable", theorem="Thm 2", **_CVAE_KW),
    _MHVAE(mode="sigma2-learnable", theorem="Thm 3", **_MH_KW),
    _MHVAE(mode="fixed", theorem="Thm 5", reports_dead=True, **_MH_KW),
    _MHVAE(mode="sigma1-learnable", theorem=None, **_MH_KW),
)}


def facts(model):
    """The registry entry that stands for ``model``'s shared facts (``conditional``,
    ``two_latents``, ``default_dim``, ``hyper``, ``result_type``, ``minibatch``): its first mode."""
    return next(v for v in REGISTRY.values() if v.model == model)


def is_conditional(model):
    """Whether ``model`` takes a target Y besides X."""
    return facts(model).conditional


def lookup(model, *, sigma=None, sigma1=0.5, sigma2=None):
    """The registry entry of ``model`` with these (validated) variances; None means learnable.

    Parameters
    ----------
    model : {"vae", "cvae", "mhvae"}
    sigma : None or ndarray
        The VAE's fixed σ (None: learnable).
    sigma1, sigma2 : None or float
        The MHVAE's σ₁, σ₂ (None: learnable).
    """
    mode = {"vae": "learnable" if sigma is None else "fixed", "cvae": "learnable",
            "mhvae": "sigma1-learnable" if sigma1 is None else "sigma2-learnable" if sigma2 is None else "fixed"}
    return REGISTRY[f"{model}/{mode[model]}"]


def finite_loss(result):
    """Refuse a closed-form result whose loss is not representable (the data and η scales disagree)."""
    if not np.isfinite(result.loss):
        raise ValueError(f"the loss at the optimum is {result.loss!r} in float64: the data scale "
                         f"(largest θ {float(np.max(to_host(result.data_theta), initial=0.0)):.3g}) and eta_dec "
                         f"= {result.eta_dec:.3g}, eta_enc = {result.eta_enc:.3g} are too far apart; rescale the "
                         "data or the η's by a power of two")
    return result


def _compare_with_closed_form(spec, cols, results):
    """Warn (:class:`~linvae.exceptions.ConvergenceWarning`) when full-batch gradient training ended
    above the closed form's global minimum by more than ``_config.TRAINED_GAP_WARN`` (relative),
    naming the worst configuration, both losses and collapse counts. Models without a closed form
    (the MHVAE with learned σ₁) and the stochastic minibatch solver are not compared."""
    if spec.options.solver not in ("gd", "adam"):
        return
    try:
        exact = spec.variant.closed_forms(spec, {k: np.asarray(v, dtype=float) for k, v in cols.items()
                                                 if k != "seed"})
    except NotImplementedError:
        return
    gaps = [(float(r.loss) - float(e.loss)) / max(abs(float(e.loss)), 1e-300) for r, e in zip(results, exact)]
    bad = [b for b, g in enumerate(gaps) if g > _config.TRAINED_GAP_WARN]
    if not bad:
        return
    from ._warn import warn
    from .exceptions import ConvergenceWarning

    b = max(bad, key=lambda i: gaps[i])
    r, e = results[b], exact[b]
    config = ", ".join(f"{k}={float(v[b]):g}" if k != "seed" else f"seed={int(v[b])}" for k, v in cols.items())
    theta = float(np.max(to_host(e.data_theta), initial=0.0))
    warn(f"{len(bad)} of {len(results)} trained configs end above the closed form's global minimum by more than "
         f"{_config.TRAINED_GAP_WARN:g} (relative); the worst, config {b} ({config}): loss {float(r.loss):.6g} against "
         f"{float(e.loss):.6g} (relative gap {gaps[b]:.2g}), {int(r.n_collapsed)} collapsed against "
         f"{int(e.n_collapsed)}. First-order training does not reach this optimum in max_iter={spec.options.max_iter} "
         f"(largest data θ / η_dec = {theta / float(e.eta_dec):.3g}: data far above η_dec, or badly scaled "
         "columns, make it ill-conditioned); solver='closed_form' gives the exact minimizer", ConvergenceWarning)


def fit_configurations(spec, cols=None):
    """Fit the configurations ``cols`` (default: all of ``spec``): closed forms or one training batch.

    Parameters
    ----------
    spec : linvae._spec.FitSpec
    cols : dict of str -> ndarray, optional
        Flat, equally long columns (a chunk of ``spec.configurations()``).

    Returns
    -------
    list of VAEFit, CVAEFit or MHVAEFit
    """
    cols = spec.configurations() if cols is None else cols
    variant = spec.variant
    if spec.trains:
        results = variant.train(spec, cols)
        _compare_with_closed_form(spec, cols, results)
        return results
    cols = {k: np.asarray(v, dtype=float) for k, v in cols.items()}
    variant.warn_dropped(spec, cols)
    return [finite_loss(r) for r in variant.closed_forms(spec, cols)]
