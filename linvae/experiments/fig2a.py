"""Fig 2a: (ε, δ)-collapse of the linear VAE on MNIST, learnable vs fixed encoder variance."""
import numpy as np

from .. import fit, metrics
from ..plotting import style
from ..stats import Moments
from ._common import BASIS_DEPENDENT, CONFIRMED, CONTRADICTED, Claim, Output, load_data, size, verdict

EPS = np.logspace(-6, 1, 71)
EPS_CLAIM = 8e-5
DELTA = 0.05

CONFIGS = {
    "learnable Σ (β=4, η_enc=η_dec=1)": dict(beta=4.0, eta_enc=1.0, eta_dec=1.0, sigma="learnable"),
    "fixed Σ = I (β=4, η_enc=η_dec=1)": dict(beta=4.0, eta_enc=1.0, eta_dec=1.0, sigma=1.0),
    "fixed σ = (8,4,2,1,0.5) (β=4, η_enc=5, η_dec=10)": dict(beta=4.0, eta_enc=5.0, eta_dec=10.0,
                                                            sigma=[8.0, 4.0, 2.0, 1.0, 0.5]),
}


def compute(*, quick=False, seed=0, backend="auto", data=None):
    """Train the three linear VAEs (d₁ = 5) by full-batch Adam on the moment matrices and compare
    their collapse curves with the closed forms (Thm 4, Thm 1)."""
    X, _, meta = load_data(data)
    moments = Moments.from_arrays(X)        # once: every fit below starts from these moments
    max_iter = size(quick, 40000, 4000, 300)
    table = {"eps": EPS}
    counts = {}
    ranks = {}
    for name, cfg in CONFIGS.items():
        theory = fit(moments, latent_dim=5, **cfg)
        trained = fit(moments, latent_dim=5, solver="adam", backend=backend, seed=seed, max_iter=max_iter, **cfg)
        for label, res in (("theory", theory), ("trained", trained)):
            kl = res.kl_per_example(X)
            table[f"{label}: {name}"] = metrics.collapse_curve(kl, EPS, DELTA)
            counts[(label, name)] = int(metrics.collapse_curve(kl, [EPS_CLAIM], DELTA)[0])
            sv = np.linalg.svd(X @ res.W.T / np.sqrt(len(X)), compute_uv=False)   # λ, rotation-invariant
            ranks[(label, name)] = int(np.sum(sv > 1e-3 * max(sv.max(), 1e-300)))
    with style() as plt:
        fig, ax = plt.subplots()
        for i, name in enumerate(CONFIGS):
            color = f"C{i}"
            ax.step(EPS, table[f"trained: {name}"], where="post", color=color, label=f"trained, {name}")
            ax.step(EPS, table[f"theory: {name}"], where="post", color=color, ls="--", lw=1)
        ax.axvline(EPS_CLAIM, color="0.5", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set_xlabel("ε")
        ax.set_ylabel(f"collapsed dims (δ = {DELTA})")
        ax.set_ylim(-0.2, 5.4)
        ax.set_title("Linear VAE on MNIST, d₁ = 5 (dashed: closed form)")
        ax.legend(loc="upper left", fontsize=7)
    names = list(CONFIGS)
    claims = [
        Claim("learnable Σ: 3 of 5 dims collapse at ε = 8e-5 (δ = 0.05)",
              f"Thm 4: {counts[('theory', names[0])]} collapsed",
              f"{counts[('trained', names[0])]} collapsed after training",
              verdict(counts[("trained", names[0])] == 3)),
        Claim("fixed σ = (8,4,2,1,0.5), η_enc = 5, η_dec = 10 (the scripts): no dim collapses",
              f"Thm 1: {counts[('theory', names[2])]} collapsed (dead rows keep KL ½(s−1−log s) > 0)",
              f"{counts[('trained', names[2])]} collapsed after training",
              verdict(counts[("trained", names[2])] == 0)),
        _identity_claim(counts[("trained", names[1])], ranks[("trained", names[1])],
                        counts[("theory", names[1])], ranks[("theory", names[1])]),
    ]
    return Output(figure=fig, tables={"collapse_curves": table}, claims=claims,
                  meta={"data_checksum": meta["checksum"], "N": meta["N"], "delta": DELTA, "max_iter": max_iter})


def _identity_claim(per_coordinate, rank, theory_count, theory_rank, latent=5):
    """Σ = I, η_enc = 1: judged per coordinate *and* by the rotation-invariant count.

    With all σ equal the optimum is unique only up to a rotation of the latent space, so a count
    of collapsed coordinates depends on the basis training lands in.  The rotation-invariant
    measure is the number of latent directions the encoder does not use, ``d₁ − rank(W)``: with
    σ = η_enc those directions are exactly the prior.  The claim "no dim collapses" is confirmed
    only when both measures say 0, contradicted when both say > 0, and "basis-dependent" otherwise.
    """
    invariant = latent - rank
    if per_coordinate == 0 and invariant == 0:
        v = CONFIRMED
    elif per_coordinate > 0 and invariant > 0:
        v = CONTRADICTED
    else:
        v = BASIS_DEPENDENT
    return Claim("fixed Σ = I with η_enc = 1 (the caption): no dim collapses",
                 f"Thm 1: axis-aligned optimum has {theory_count} dims equal to the prior; encoder rank {theory_rank}, "
                 f"so {latent - theory_rank} unused latent directions",
                 f"per coordinate: {per_coordinate} collapsed; rotation-invariant: {invariant} unused latent "
                 f"directions (d₁ − rank W, rank {rank})", v,
                 note="The two measures disagree, so the verdict is basis-dependent: with all σ = η_enc the optimum "
                      "is unique only up to a rotation, gradient descent lands on a rotated optimum whose "
                      "coordinates all carry a little information, yet only a rank-"
                      f"{rank} subspace is used (its complement is exactly the prior). Distinct fixed σ (the "
                      "scripts' setting) pin the axes." if v == BASIS_DEPENDENT else "")
