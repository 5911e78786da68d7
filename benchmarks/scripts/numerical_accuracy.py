"""Accuracy of the θ spectra on badly scaled data (README "Reliability / Numerical inputs").

Correlated Gaussian data (unit-scale columns mixed by a random matrix, correlations up to about
0.5) has its columns rescaled by factors spread from 1 to 1e12 and the whole matrix by 1e-150 to
1e138. The reference θ are the square roots of the eigenvalues of the *exact* XᵀX/N (every
product and sum in 80-digit mpmath arithmetic, eigenvalues by ``mpmath.eigsy``). Printed: the
largest relative θ error of ``linvae`` (equilibrated moments + Jacobi SVD, ``rtol=1e-30`` to keep
every mode) and of plain ``eigh`` of the same float64 moments (what linvae did before), and the
largest relative change of the CVAE θ when one column of x is multiplied by 1e-12 .. 1e12.

Usage: ``python benchmarks/scripts/numerical_accuracy.py`` (needs mpmath; a minute; not a timing).
"""
import numpy as np

import linvae


def exact_theta(X):
    import mpmath

    mpmath.mp.dps = 80
    M = mpmath.matrix(X.tolist())
    G = (M.T * M) / X.shape[0]
    ev = mpmath.eigsy(G, eigvals_only=True)
    return np.sort(np.array([float(mpmath.sqrt(max(e, 0))) for e in ev]))[::-1]


def main():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(200, 6)) @ (np.eye(6) + 0.3 * rng.normal(size=(6, 6)))
    print("VAE θ, max relative error (reference: exact moments in mpmath)")
    print(f"{'overall':>9} {'spread':>7} {'linvae':>9} {'plain eigh':>10}")
    worst = 0.0
    order = [5, 0, 3, 1, 4, 2]                # column scales not monotone in the column index
    for overall in (1e-150, 1e-100, 1.0, 1e100, 1e138):
        for spread in (1.0, 1e3, 1e6, 1e9, 1e12):
            if overall * spread * 10 > 1e150:
                continue
            X = base * (overall * np.logspace(0, -np.log10(spread), 6)[order])
            try:
                m = linvae.Moments.from_arrays(X)
            except ValueError as exc:                       # out of float64 range: refused, with the scale
                print(f"{overall:9.0e} {spread:7.0e}   refused: {str(exc)[:60]}...")
                continue
            exact = exact_theta(X)
            got = m.spectrum(rtol=1e-30)[0]
            ev = np.sort(np.clip(np.linalg.eigvalsh(m.xx), 0, None))[::-1]
            err = np.max(np.abs(got - exact) / exact) if got.size == exact.size else np.inf
            with np.errstate(divide="ignore", invalid="ignore"):
                plain = np.max(np.abs(np.sqrt(ev) - exact) / exact)
            worst = max(worst, err)
            print(f"{overall:9.0e} {spread:7.0e} {err:9.1e} {plain:10.1e}")
    print(f"worst linvae error: {worst:.1e}")
    rng = np.random.default_rng(1)
    X = rng.normal(size=(500, 6)) * [3, 2, 1, .6, .3, .1]
    Y = X[:, :3] @ np.ones((3, 4)) + rng.normal(size=(500, 4))
    ref = linvae.fit(X, Y).data_theta
    change = 0.0
    for scale in (1e-12, 1e-6, 1e6, 1e12):
        for col in range(6):
            Xs = X.copy()
            Xs[:, col] *= scale
            change = max(change, float(np.max(np.abs(linvae.fit(Xs, Y).data_theta - ref) / ref)))
    print(f"CVAE θ, max relative change under x[:, j] *= 1e-12 .. 1e12: {change:.1e}")


if __name__ == "__main__":
    main()
