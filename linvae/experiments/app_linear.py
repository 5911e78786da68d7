"""Appendix experiments on the linear models, Table 1 (levers) and Table 2 (linear VAE LL/KL/AU)."""
import numpy as np

from .. import fit, metrics, predict_collapse, sweep
from ..data import correlated_pairs, quadrant_split, train_test_split
from ..plotting import style
from ..stats import Moments
from ._common import NOT_RUN, Claim, Output, load_data, size, verdict

EPS_ACTIVE = 1e-3     # (ε, δ) used to count collapsed dims of trained and theoretical fits alike
DELTA = 0.05


def _counts(results, kl_inputs):
    """(ε, δ)-collapsed dims of each fit at ε = EPS_ACTIVE."""
    return np.array([int(metrics.collapse_curve(r.kl_per_example(*kl_inputs), [EPS_ACTIVE], DELTA)[0])
                     for r in results])


def _active_figure(grid, exact, th_eps, tr_eps, xlabel, total, theorem, title):
    """Active dims against a hyperparameter: theory (exact and (ε, δ) count) and training."""
    with style() as plt:
        fig, ax = plt.subplots()
        ax.plot(grid, exact, color="0.3", lw=1.2, label=f"{theorem}: active dims")
        ax.plot(grid, th_eps, "--", color="C0", lw=1, label=f"closed form, (ε={EPS_ACTIVE:g}, δ={DELTA}) count")
        ax.plot(grid, tr_eps, "o", color="C1", ms=4, label="trained (Adam on moments), same count")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"active latent dims (of {total})")
        ax.set_title(title)
        ax.legend()
    return fig


def _active_claims(name, param, exact, tr_eps, th_eps, theorem, note=""):
    agree = int(np.sum(tr_eps == th_eps))
    down = bool(np.all(np.diff(tr_eps) <= 0))
    return [
        Claim(f"{name}: the number of active dims falls as {param} grows ({theorem})",
              f"active dims {int(exact[0])} → {int(exact[-1])}, non-increasing",
              f"trained: {int(tr_eps[0])} → {int(tr_eps[-1])}, non-increasing: {down}",
              verdict(down and tr_eps[0] > tr_eps[-1])),
        Claim(f"trained {name} = theory (active count per {param})", f"identical counts at every {param}",
              f"{agree} of {len(tr_eps)} {param} values agree", verdict(agree == len(tr_eps)), note),
    ]


def cvae_beta(*, quick=False, seed=0, backend="auto", data=None):
    """Linear CVAE on the MNIST quadrant split (d_z = 64): active dims against β, theory and training."""
    images, _, meta = load_data(data)
    x, y = quadrant_split(images)
    betas = np.linspace(0.1, 5.0, size(quick, 50, 6, 3))
    closed = sweep(x, y, beta=betas, latent_dim=64, solver="closed_form")
    trained = sweep(x, y, beta=betas, latent_dim=64, solver="adam", backend=backend, seed=seed,
                    max_iter=size(quick, 4000, 1000, 30))
    exact = closed.table()["n_active"]
    th_eps = 64 - _counts(closed, (x, y))
    tr_eps = 64 - _counts(trained, (x, y))
    first_pass = tr_eps.copy()
    # rerun the β values where training and Thm 2 disagree, with 10× the steps, and report what happens
    miss = np.nonzero(tr_eps != th_eps)[0]
    theta = np.sort(Moments.from_arrays(x, y).residual()[2])[::-1]
    where = []
    if len(miss):
        longer = sweep(x, y, beta=betas[miss], latent_dim=64, solver="adam", backend=backend, seed=seed,
                       max_iter=size(quick, 10, 2) * size(quick, 4000, 1000, 30))
        tr_eps[miss] = 64 - _counts(longer, (x, y))
        for i in miss:
            j = int(np.argmin(np.abs(theta - betas[i])))        # the mode nearest the threshold βη_dec² (η_dec = 1)
            where.append(f"β = {betas[i]:.3f}: nearest θ_i(E) = {theta[j]:.4f} is "
                         f"{'below' if theta[j] < betas[i] else 'above'} βη_dec² by {abs(theta[j] / betas[i] - 1):.1%}")
    fig = _active_figure(betas, exact, th_eps, tr_eps, "β", 64, "Thm 2", "Linear CVAE on MNIST quadrants")
    if len(miss):
        note = (f"{len(miss)} β values disagreed after the first pass ({'; '.join(where)}); rerun with "
                f"{size(quick, 10, 2)}× the Adam steps: {int(np.sum(tr_eps[miss] == th_eps[miss]))} of {len(miss)} then agree. Modes within "
                "a few percent of the threshold sit on a flat loss and converge sublinearly.")
    else:
        note = ""
    claims = _active_claims("linear CVAE", "β", exact, tr_eps, th_eps, "Thm 2", note=note)
    claims[1].category = "check"
    tables = {"active_vs_beta": {"beta": betas, "theory_active": exact, "theory_active_eps": th_eps,
                                 "trained_active_eps_first_pass": first_pass, "trained_active_eps": tr_eps,
                                 "trained_loss": trained.table()["loss"], "theory_loss": closed.table()["loss"]}}
    return Output(fig, tables, claims, {"data_checksum": meta["checksum"], "N": meta["N"],
                                        "reruns": [float(b) for b in betas[miss]]})


def mhvae_beta2(*, quick=False, seed=0, backend="auto", data=None):
    """Linear MHVAE (d₁ = d₂ = 10, σ₁ = 0.5, η = 0.5): active z₂ dims against β₂."""
    images, _, meta = load_data(data)
    beta2 = np.linspace(0.1, 7.0, size(quick, 70, 8, 3))
    kw = dict(model="mhvae", latent_dims=(10, 10), sigma1=0.5, eta_enc=0.5, eta_dec=0.5, beta1=1.0)
    closed = sweep(images, beta2=beta2, solver="closed_form", **kw)
    trained = sweep(images, beta2=beta2, solver="adam", backend=backend, seed=seed,
                    max_iter=size(quick, 8000, 1200, 30), **kw)
    exact = closed.table()["n_active"]
    th_eps = 10 - _counts(closed, (images,))
    tr_eps = 10 - _counts(trained, (images,))
    fig = _active_figure(beta2, exact, th_eps, tr_eps, "β₂", 10, "Thm 3", "Linear MHVAE on MNIST (σ₁ = 0.5, η = 0.5)")
    claims = _active_claims("linear MHVAE", "β₂", exact, tr_eps, th_eps, "Thm 3")
    claims[1].category = "check"
    tables = {"active_vs_beta2": {"beta2": beta2, "theory_active": exact, "theory_active_eps": th_eps,
                                  "trained_active_eps": tr_eps}}
    return Output(fig, tables, claims, {"data_checksum": meta["checksum"], "N": meta["N"]})


def verify(*, quick=False, seed=0, backend="auto", data=None):
    """Trained vs theoretical ω, λ, σ for Thm 2 (CVAE), Thm 3 and Thm 5 (MHVAE) on MNIST."""
    images, _, meta = load_data(data)
    x, y = quadrant_split(images)
    max_iter = size(quick, 40000, 5000, 50)
    cases = {
        # β η_dec² = 1.25 sits between θ₄(E) ≈ 1.53 and θ₅(E) ≈ 1.08 on MNIST: 4 active, 2 collapsed dims
        "Thm 2 (CVAE, d_z=6, β=1, η_dec=1.118)": ((x, y), dict(latent_dim=6, beta=1.0, eta_dec=1.118)),
        "Thm 3 (MHVAE, σ₁=0.5, β₂=2)": ((images,), dict(model="mhvae", latent_dims=(6, 6), sigma1=0.5, beta2=2.0,
                                                      eta_dec=0.7)),
        "Thm 5 (MHVAE, σ₁=0.5, σ₂=0.8)": ((images,), dict(model="mhvae", latent_dims=(6, 6), sigma1=0.5,
                                                         sigma2=0.8, beta1=1.5, eta_dec=0.7)),
    }
    rows = {"case": [], "quantity": [], "theory": [], "trained": []}
    worst = {}
    for name, (args, kw) in cases.items():
        th = fit(*args, **kw)
        tr = fit(*args, solver="gd" if "CVAE" in name else "adam", backend=backend, seed=seed,
                 max_iter=max_iter, **kw)
        err = 0.0
        for q in ("omega", "lambda_", "sigma"):
            a, b = np.sort(getattr(th, q)), np.sort(getattr(tr, q))
            rows["case"] += [name] * len(a)
            rows["quantity"] += [q.rstrip("_")] * len(a)
            rows["theory"] += a.tolist()
            rows["trained"] += b.tolist()
            err = max(err, float(np.max(np.abs(a - b))))
        worst[name] = err
    with style() as plt:
        fig, axes = plt.subplots(1, 3, figsize=(10, 3.3))
        for ax, name in zip(axes, cases):
            for j, q in enumerate(("omega", "lambda", "sigma")):
                sel = [i for i in range(len(rows["case"])) if rows["case"][i] == name and rows["quantity"][i] == q]
                ax.plot([rows["theory"][i] for i in sel], [rows["trained"][i] for i in sel], "o", ms=4,
                        color=f"C{j}", label={"omega": "ω", "lambda": "λ", "sigma": "σ"}[q])
            lim = max(rows["theory"][i] for i in range(len(rows["case"])) if rows["case"][i] == name) * 1.08
            ax.plot([0, lim], [0, lim], color="0.6", lw=0.8)
            ax.set_title(f"{name}\nmax |Δ| = {worst[name]:.1e}", fontsize=8)
            ax.set_xlabel("theory")
        axes[0].set_ylabel("trained")
        axes[0].legend()
        fig.tight_layout()
    claims = [Claim(f"{name}: trained = theory to ≤ 1e-3", "ω, λ, σ of the closed form",
                    f"max |trained − theory| = {err:.2e}", verdict(err <= 1e-3)) for name, err in worst.items()]
    return Output(fig, {"verify": rows}, claims, {"data_checksum": meta["checksum"], "max_iter": max_iter})


def table1(*, quick=False, seed=0, backend="auto", data=None):
    """Each lever of the paper's Table 1 backed by a computed example (closed forms)."""
    images, _, meta = load_data(data)
    x, y = quadrant_split(images)
    rows = {"lever": [], "setting": [], "collapsed": []}
    claims = []

    def add(lever, settings, counts, expect_fewer_last, note=""):
        for s, c in zip(settings, counts):
            rows["lever"].append(lever)
            rows["setting"].append(s)
            rows["collapsed"].append(int(c))
        ok = counts[-1] < counts[0] if expect_fewer_last else counts[-1] > counts[0]
        claims.append(Claim(lever, "fewer collapsed dims" if expect_fewer_last else "more collapsed dims",
                            " → ".join(f"{s}: {int(c)}" for s, c in zip(settings, counts)), verdict(ok), note,
                            category="theory"))

    t = predict_collapse(x, y, beta=[2.0, 0.5], latent_dim=64)
    add("↓β (CVAE, MNIST quadrants, d_z = 64)", ["β=2", "β=0.5"], t["n_collapsed"], True)
    t = predict_collapse(x, y, eta_dec=[1.0, 0.5], latent_dim=64)
    add("↓η_dec (CVAE, d_z = 64)", ["η_dec=1", "η_dec=0.5"], t["n_collapsed"], True)
    counts = []
    kinds = ["identical", "rho=1/2", "rho=1/8", "random"]
    for kind in kinds:
        xs, ys, _ = correlated_pairs(kind, n=1000, dim=128, seed=seed)
        counts.append(predict_collapse(xs, ys, beta=1.0, eta_enc=1.0, eta_dec=0.5)["n_collapsed"][0])
    add("decorrelate x and y (CVAE, synthetic, d = 128)", kinds, counts, True)
    t = predict_collapse(images, model="mhvae", beta2=[2.0, 0.5], latent_dims=(16, 16), sigma1=0.5, eta_dec=0.5)
    add("↓β₂ (MHVAE, d₁ = d₂ = 16, σ₁ = 0.5)", ["β₂=2", "β₂=0.5"], t["n_collapsed"], True)
    t = predict_collapse(images, model="mhvae", beta1=[0.5, 4.0], beta2=2.0, latent_dims=(16, 16), sigma1=0.5,
                         eta_dec=0.5)
    add("↑β₁ (MHVAE, β₂ = 2)", ["β₁=0.5", "β₁=4"], t["n_collapsed"], True)
    claims.append(Claim("separate maps x → z₁ and x → z₂ (MHVAE)", "—", "—", NOT_RUN,
                        "No linear closed form in this package covers that architecture.", category="theory"))
    with style() as plt:
        fig, ax = plt.subplots(figsize=(6.5, 3.6))
        labels = [f"{lv.split(' (')[0]}: {s}" for lv, s in zip(rows["lever"], rows["setting"])]
        ax.barh(range(len(labels)), rows["collapsed"], color=[f"C{i % 2}" for i in range(len(labels))])
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel("collapsed latent dims (closed form)")
        ax.set_title("Levers against collapse (Table 1)")
    return Output(fig, {"levers": rows}, claims, {"data_checksum": meta["checksum"]})


def table2(*, quick=False, seed=0, backend="auto", data=None):
    """Linear VAE, learnable vs fixed Σ: held-out log-likelihood (exact and IS), KL, active units."""
    images, labels, meta = load_data(data)
    train, test = train_test_split(images, test_fraction=0.2, seed=seed)
    S = size(quick, 10_000, 1000, 50)
    n_eval = size(quick, len(test), 200, 50)
    rows = {"model": [], "LL_exact": [], "LL_IS": [], "KL": [], "AU_variance": [], "AU_kl_fraction": []}
    configs = {"learnable Σ": dict(sigma="learnable"), "fixed σ = (8,4,2,1,0.5)": dict(sigma=[8, 4, 2, 1, 0.5]),
               "fixed Σ = I": dict(sigma=1.0)}
    for name, cfg in configs.items():
        eta = dict(eta_enc=5.0, eta_dec=10.0) if "(8" in name else dict(eta_enc=1.0, eta_dec=1.0)
        res = fit(train, latent_dim=5, beta=4.0, **eta, **cfg)
        ev = test[:n_eval]
        kl = res.kl_per_example(ev)
        rows["model"].append(name)
        rows["LL_exact"].append(float(np.mean(metrics.exact_log_likelihood(res, ev))))
        rows["LL_IS"].append(float(np.mean(metrics.log_likelihood_is(res, ev, n_samples=S, seed=seed))))
        rows["KL"].append(float(kl.sum(axis=1).mean()))
        rows["AU_variance"].append(metrics.active_units_variance(res.encode(ev)[0]))
        rows["AU_kl_fraction"].append(metrics.active_units_kl(kl))
    gaps = [abs(a - b) for a, b in zip(rows["LL_exact"], rows["LL_IS"])]
    claims = [
        Claim("learnable Σ collapses more than fixed σ ≠ η_enc (lower KL-fraction AU)",
              "Thm 4: 3 of 5 dims collapsed; Thm 1: none",
              f"AU (KL fraction, the authors' metric) {rows['AU_kl_fraction'][0]:.3f} vs "
              f"{rows['AU_kl_fraction'][1]:.3f}",
              verdict(rows["AU_kl_fraction"][0] < rows["AU_kl_fraction"][1]),
              note="The verdict uses the authors' KL-fraction AU, fixed before the run. Burda's variance AU "
                   f"counts {rows['AU_variance'][0]} vs {rows['AU_variance'][1]} units: it measures whether the "
                   "encoder mean varies, which a fixed-σ encoder's zero rows also fail, so it need not agree."),
        Claim("IS log-likelihood (encoder as proposal) matches the exact marginal for the learnable-Σ VAE",
              f"exact value (S = {S})", f"|IS − exact| = {gaps[0]:.3f} nats/example", verdict(gaps[0] < 0.05),
              category="check",
              note="A check of this package's estimator, not a claim of the paper. With fixed σ the encoder is a "
                   "poor proposal in 784 dimensions and IS underestimates: "
                   + ", ".join(f"{m}: {g:.2f} nats" for m, g in zip(rows["model"][1:], gaps[1:]))),
    ]
    if quick:
        for c in claims:
            c.note = (c.note + " " if c.note else "") + f"Quick run: IS with S = {S} on {n_eval} test images."
    relu_rows, relu_claims, relu_meta = _table2_relu(train, test, quick, seed, backend, S, n_eval)
    claims += relu_claims
    with style() as plt:
        fig, ax = plt.subplots(figsize=(6.5, 1.9))
        ax.axis("off")
        cells = [[rows["model"][i], f"{rows['LL_exact'][i]:.1f}", f"{rows['LL_IS'][i]:.1f}", f"{rows['KL'][i]:.2f}",
                  str(rows["AU_variance"][i]), f"{rows['AU_kl_fraction'][i]:.3f}"] for i in range(len(rows["model"]))]
        tab = ax.table(cellText=cells, colLabels=["model", "LL exact", f"LL IS (S={S})", "KL", "AU (var)", "AU (KL)"],
                       loc="center")
        tab.auto_set_font_size(False)
        tab.set_fontsize(8)
        ax.set_title("Table 2: linear VAE (MNIST test split, d₁ = 5, β = 4)")
    budget_keys = ("epochs", "steps", "paper_steps", "step_ratio", "batch_size", "seeds", "architecture")
    return Output(fig, {"table2": rows, "table2_relu": relu_rows}, claims,
                  {"data_checksum": meta["checksum"], "S": S, "n_eval": n_eval, "relu_arm": relu_meta,
                   "n_train": relu_meta["n_train"], "n_test": relu_meta["n_test"],
                   **{k: relu_meta[k] for k in budget_keys}})


def _au_anatomy(kl, threshold=0.01):
    """What the KL-fraction AU (threshold 0.01 nats) is made of, for Table 2's ReLU arm.

    ``zero_kl_fraction``: (example, dim) pairs with KL exactly 0 (with Σ = I and ReLU means: the
    ReLU is off, μ = 0).  ``dims_all_or_none``: fraction of dims active on every example or on none
    (then the AU is a multiple of 1/latent: it counts dims, not pairs).
    """
    active = np.asarray(kl) >= threshold
    return {"zero_kl_fraction": float(np.mean(np.asarray(kl) == 0.0)),
            "dims_all_or_none": float(np.mean(active.all(axis=0) | ~active.any(axis=0)))}


def _kl_parts(mu, sigma, eta_enc):
    """The two parts of a Gaussian VAE's per-example, per-dim KL against N(0, η_enc²):
    ``½μ²/η_enc²`` (the mean part) and ``½(σ²/η_enc² − 1 − ln σ²/η_enc²)`` (the σ part, ≥ 0, 0 only
    at σ = η_enc). Their sum is the KL (SPEC §4)."""
    mu, var = np.asarray(mu, float), (np.asarray(sigma, float) / eta_enc) ** 2
    return 0.5 * mu**2 / eta_enc**2, np.broadcast_to(0.5 * (var - 1.0 - np.log(var)), mu.shape)


def _sigma_band(threshold=0.01):
    """The σ (in units of η_enc) at which the σ part of the KL alone reaches ``threshold``: below the
    first and above the second, every example of the dim is active for the KL-fraction AU."""
    from scipy.optimize import brentq

    part = lambda s: 0.5 * (s * s - 1.0 - 2.0 * np.log(s)) - threshold  # noqa: E731
    return brentq(part, 1e-3, 1.0), brentq(part, 1.0, 10.0)


def _encoder_anatomy(model, X, threshold=0.01, batch_size=1000):
    """The AU of a trained torch VAE taken apart on ``X``: the KL-fraction AU of the mean part
    (``AU_mu_part``) and of the σ part (``AU_sigma_part``) alone (:func:`_kl_parts`), Burda's
    variance AU, the fraction of (example, dim) means exactly 0 (dead ReLU means) and the range of σ."""
    import torch

    model.eval()
    mus, sigmas = [], []
    with torch.no_grad():
        for start in range(0, len(X), batch_size):
            mu, sd = model.encode(torch.as_tensor(X[start:start + batch_size], dtype=torch.get_default_dtype()))
            mus.append(mu.double().numpy())
            sigmas.append(torch.broadcast_to(sd, mu.shape).double().numpy())
    model.train()
    mu, sigma = np.concatenate(mus), np.concatenate(sigmas)
    mean_part, sigma_part = _kl_parts(mu, sigma, model.eta_enc)
    return {"AU_mu_part": float(np.mean(mean_part >= threshold)), "AU_sigma_part": float(np.mean(sigma_part >= threshold)),
            "AU_variance": int(metrics.active_units_variance(mu)), "dead_mean_fraction": float(np.mean(mu == 0.0)),
            "sigma_min": float(sigma.min()), "sigma_max": float(sigma.max())}


def _rows_of(rows, model, key):
    """The per-seed values of ``key`` for one model of a Table 2 row dict."""
    return [v for m, v in zip(rows["model"], rows[key]) if m == model]


def _pair(rows, a, b, key, digits=2):
    """``"[a per seed] vs [b per seed]"`` of one column of the ReLU rows."""
    shown = (lambda v: int(round(float(v)))) if digits == 0 else (lambda v: round(float(v), digits))  # noqa: E731
    return str([shown(v) for v in _rows_of(rows, a, key)]) + " vs " + str([shown(v) for v in _rows_of(rows, b, key)])


#: Table 2's ReLU arms: name → (σ of the network, nominal β). The first two are the paper's setting
#: (learnable vs Σ = I at β = 1); at σ = η_enc Thm 1 collapses the same dims as Thm 4, so the theory
#: predicts no difference there. The last two are a setting where it predicts one: a fixed
#: σ = 0.5 ≠ η_enc (Thm 1: no dim can reach the prior) against learnable σ at β = 4.
TABLE2_RELU_ARMS = {"learnable σ (global)": ("global", 1.0), "fixed Σ = I": (1.0, 1.0),
                    "learnable σ (global), β=4": ("global", 4.0), "fixed σ = 0.5, β=4": (0.5, 4.0)}


def _table2_relu(train, test, quick, seed, backend, S, n_eval):
    """Table 2's ReLU arm: the authors' ReLU VAE (784–256–16, ReLU means, one global learnable σ)
    against the same network with Σ = I, on three seeds, at the paper's step budget; and the same
    pair where the theory predicts a difference (:data:`TABLE2_RELU_ARMS`)."""
    from ..nn import VAE, authors_vae
    from ._nonlinear_common import (AUTHORS, DELTA, EPS_REPORT, budget, evaluate_kl, measure, seeds_for,
                                    timed_evaluation, train_grid)
    from ._verdict import GREATER_RULE, greater

    settings = AUTHORS["vae"]
    if quick:
        train, test = train[:size(quick, None, 1000, 120)], test[:size(quick, None, 200, 30)]
    plan = budget(quick, len(train), settings["batch_size"], quick_steps=300)
    seeds = seeds_for(quick, seed)
    ks = settings["kl_scale"]

    def make(sigma, beta):
        if sigma == "global":
            return authors_vae(beta=beta, kl_scale=ks)
        return VAE(784, 16, arch="mlp", hidden=256, sigma=sigma, beta=beta, kl_scale=ks, mean_activation="relu")

    models = {}
    for name, (sigma, beta) in TABLE2_RELU_ARMS.items():        # different parameters: one grid each
        models.update(train_grid(make, {name: dict(sigma=sigma, beta=beta)}, seeds, (train,), plan, settings,
                                 backend=backend))
    # the linear theory at each arm's effective β (centred: the network has biases)
    theory = {name: int(predict_collapse(train, beta=beta * ks, latent_dim=16, center=True,
                                         sigma="learnable" if sigma == "global" else sigma)["n_collapsed"][0])
              for name, (sigma, beta) in TABLE2_RELU_ARMS.items()}
    S_relu, n_relu = size(quick, (S, len(test)), (100, 100), (5, 10))
    rows = {"model": [], "seed": [], "beta": [], "theory_collapsed": [], "LL_IS": [], "KL": [], "AU_kl_fraction": [],
            "score": [], "collapsed_at_eps": [], "zero_kl_fraction": [], "dims_all_or_none": [], "AU_mu_part": [],
            "AU_sigma_part": [], "AU_variance": [], "dead_mean_fraction": [], "sigma_min": [], "sigma_max": []}
    for (name, s), model in models.items():
        with timed_evaluation():
            kl = evaluate_kl(model, test)
            anatomy = _encoder_anatomy(model, test)
            ll = float(np.mean(model.log_likelihood(test[:n_relu], n_samples=S_relu, seed=seed)))
        m = measure(kl)
        for k, v in (("model", name), ("seed", s), ("beta", TABLE2_RELU_ARMS[name][1]),
                     ("theory_collapsed", theory[name]), ("KL", float(kl.sum(axis=1).mean())),
                     ("AU_kl_fraction", float(metrics.active_units_kl(kl))), ("score", m["score"]),
                     ("collapsed_at_eps", m["collapsed_at_eps"]), *_au_anatomy(kl).items(),
                     *anatomy.items(), ("LL_IS", ll)):
            rows[k].append(v)
    learn, fixed = "learnable σ (global)", "fixed Σ = I"
    v, reason = greater(_rows_of(rows, fixed, "AU_kl_fraction"), _rows_of(rows, learn, "AU_kl_fraction"))
    count_v, count_reason = greater(_rows_of(rows, learn, "collapsed_at_eps"), _rows_of(rows, fixed, "collapsed_at_eps"))
    score_v, _ = greater(_rows_of(rows, learn, "score"), _rows_of(rows, fixed, "score"))
    count = f"(ε = {EPS_REPORT:g}, δ = {DELTA:g})-collapsed dims"
    lo, hi = _sigma_band()
    anatomy = (f"Anatomy of the AU (per seed, learnable vs Σ = I): AU of the ½μ² part alone {_pair(rows, learn, fixed, 'AU_mu_part')}, "
               f"of the σ part alone {_pair(rows, learn, fixed, 'AU_sigma_part')}; learned σ from "
               f"{min(_rows_of(rows, learn, 'sigma_min')):.2f} to {max(_rows_of(rows, learn, 'sigma_max')):.2f}; means "
               f"exactly 0 (dead ReLU) {_pair(rows, learn, fixed, 'dead_mean_fraction')}; Burda's variance AU "
               f"{_pair(rows, learn, fixed, 'AU_variance', 0)}; {count} {_pair(rows, learn, fixed, 'collapsed_at_eps', 0)} "
               f"(learnable more by the comparison rule: {count_v}); collapse score {_pair(rows, learn, fixed, 'score')} "
               f"({score_v}). A learned σ_j ≠ 1 gives every example of dim j KL ≥ ½(σ_j² − 1 − ln σ_j²), at least 0.01 "
               f"nats once σ_j ≤ {lo:.3f} or ≥ {hi:.3f}, so the KL-fraction AU counts σ-active dims in the learnable arm "
               "and ReLU sparsity (KL = ½μ², exactly 0 where the ReLU is off) in the Σ = I arm.")
    theory_note = (f"Theory at this effective β ({ks:g}): Thm 4 (learnable) {theory[learn]} collapsed, Thm 1 with "
                   f"σ = η_enc {theory[fixed]}: at σ = η_enc the two share their threshold, so the theory predicts no "
                   "difference in collapse between these arms.")
    note = " ".join(p for p in (f"KL-fraction AU (the authors' measure): {reason}.", GREATER_RULE + f"; β = 1 (effective "
                                f"{ks:g}), Adam 1e-4, {plan['steps']} steps ({plan['step_ratio']:.3g} of the paper's).",
                                theory_note, anatomy, "quick run: tests little" if quick else "") if p)
    claims = [Claim("ReLU VAE: learnable σ collapses more than Σ = I (lower KL-fraction AU)",
                    f"linear Thm 4 vs Thm 1 (σ = η_enc): {theory[learn]} vs {theory[fixed]} collapsed",
                    "KL-fraction AU per seed: learnable, fixed " + _pair(rows, learn, fixed, "AU_kl_fraction", 3),
                    v, note=note)]
    # where the theory predicts a difference: learnable σ against a fixed σ ≠ η_enc, decided on the count
    learn4, fixed4 = "learnable σ (global), β=4", "fixed σ = 0.5, β=4"
    v4, reason4 = greater(_rows_of(rows, learn4, "collapsed_at_eps"), _rows_of(rows, fixed4, "collapsed_at_eps"))
    claims.append(Claim(
        "ReLU VAE where the theory separates the arms: learnable σ collapses more dims than a fixed σ = 0.5 ≠ η_enc "
        f"(β = 4, effective {4 * ks:g})",
        f"linear Thm 4 vs Thm 1: {theory[learn4]} vs {theory[fixed4]} collapsed (a fixed σ ≠ η_enc keeps every "
        "dim's KL ≥ ½(σ² − 1 − ln σ²) > 0)",
        f"{count} per seed, learnable vs fixed: {_pair(rows, learn4, fixed4, 'collapsed_at_eps', 0)}; beside it, "
        f"KL-fraction AU {_pair(rows, learn4, fixed4, 'AU_kl_fraction', 3)}",
        v4, note=" ".join(p for p in (f"Count: {reason4}.", "Not in the paper's tables: chosen, before the run, as a "
                                      "setting where Thm 1 and Thm 4 predict different counts.",
                                      "quick run: tests little" if quick else "") if p)))
    meta = {"architecture": models[next(iter(models))].architecture, "seeds": seeds, "settings": settings,
            "arms": {k: {"sigma": sg, "beta": b} for k, (sg, b) in TABLE2_RELU_ARMS.items()},
            "S": S_relu, "n_eval": n_relu, "n_train": len(train), "n_test": len(test), **plan}
    return rows, claims, meta
