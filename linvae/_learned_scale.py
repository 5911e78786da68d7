"""The decoder scale η_dec learned by the closed form: a one-dimensional profile (``eta_dec="learnable"``).

For a fixed η_dec the closed forms give the global minimizer of the β-ELBO loss; the mean β-ELBO
of that minimizer, in nats,

    E[ELBO](η_dec) = −½ [ L*(η_dec)/η_dec² + d log(2π η_dec²) + β k (log η_enc² − 1) ]

(``L*`` the SPEC §2 loss at its minimum, ``d`` the decoder's output size, ``k`` the latent size),
is maximised over log η_dec by a bounded scalar search. At β = 1 the linear VAE with learnable σ
is probabilistic PCA (Tipping & Bishop 1999; Lucas et al. 2019): the optimum is
η_dec² = the mean of the d − k smallest eigenvalues of the (1/N) second moment, and the model's
covariance η_enc²UUᵀ + η_dec²I is pPCA's maximum-likelihood covariance.
"""
import dataclasses

import numpy as np

__all__ = ["mean_elbo", "learn_eta_dec"]


def mean_elbo(result, d):
    """Mean β-ELBO per example (nats) of a VAE/CVAE result whose decoder has ``d`` outputs."""
    e2 = result.eta_dec ** 2
    k = result.sigma.shape[-1]
    return -0.5 * (result.loss / e2 + d * np.log(2 * np.pi * e2) + result.beta * k * (np.log(result.eta_enc ** 2) - 1))


def learn_eta_dec(fit_at, moments, model, latent):
    """The closed-form fit at the η_dec that maximises the mean β-ELBO.

    Parameters
    ----------
    fit_at : callable
        ``fit_at(eta_dec) -> result``: the closed form at a given η_dec (all else fixed).
    moments : Moments
    model : {"vae", "cvae"}
    latent : int
        Latent size k.

    Returns
    -------
    result
        The fit at the optimal η_dec, with ``eta_dec_learned = True``.

    Raises
    ------
    ValueError
        When the optimum is η_dec → 0 (the latent space spans every direction with variance:
        k ≥ rank of the decoder's target covariance), so no finite η_dec is optimal.
    """
    from scipy.optimize import minimize_scalar

    if model == "cvae":
        from .stats import cvae_residual

        spectrum = np.sort(cvae_residual(moments, None)[2])[::-1]
        d = moments.dy
    else:
        spectrum = np.sort(np.linalg.eigvalsh(moments.xx))[::-1]
        d = moments.dx
    spectrum = np.clip(spectrum, 0.0, None)
    rest = spectrum[latent:]
    rank = int(np.sum(spectrum > 1e-12 * max(spectrum[0], 1e-300))) if spectrum[0] > 0 else 0
    if rank == 0:
        raise ValueError("eta_dec='learnable' needs data with variance; these have none (a single sample, or "
                         "constant columns after centring)")
    if latent >= d or not np.any(rest > 1e-12 * max(spectrum[0], 1e-300)):
        raise ValueError(f"eta_dec='learnable' with latent_dim={latent} on {d} decoder outputs: the latent space "
                         "spans every direction with variance, so the likelihood grows without bound as η_dec → 0; "
                         f"choose latent_dim < {rank} (the rank of the data's covariance)")
    # the optimum lies between the smallest and the largest eigenvalue (β = 1: their mean over the rest)
    lo = 0.5 * np.log(max(rest[rest > 0].min(), 1e-300)) - 1.0
    hi = 0.5 * np.log(spectrum[0]) + 1.0

    def fitted(log_eta):
        result = fit_at(float(np.exp(log_eta)))
        return -mean_elbo(result, d), result

    best = minimize_scalar(lambda log_eta: fitted(log_eta)[0], bounds=(lo, hi), method="bounded",
                           options={"xatol": 1e-10})
    # the profile is piecewise smooth (modes collapse at β η_dec² = θ_i²): keep the best of the
    # bounded search and the pPCA value, which is the optimum at β = 1; the objective is flat at
    # the optimum, so the analytic value wins unless the search is truly better
    (f_searched, searched), (f_analytic, analytic) = fitted(float(best.x)), fitted(0.5 * float(np.log(rest.mean())))
    result = analytic if f_analytic <= f_searched + 1e-12 * abs(f_searched) else searched
    return dataclasses.replace(result, eta_dec_learned=True)
