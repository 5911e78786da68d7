"""Relative loss gap of ``solver="gd"`` to the closed form after a fixed number of steps, on
scikit-learn's digits at raw pixel scale and on the embedded MNIST subset (centred, k = 5, β = 1,
η_dec² = the pPCA noise variance: the settings of ``tests/test_train.py``).

    python benchmarks/scripts/gd_convergence.py                   # momentum 0.9 (the default)
    python benchmarks/scripts/gd_convergence.py --momentum 0      # plain GD
"""
import argparse
import dataclasses
import warnings

import numpy as np

import linvae
from linvae import train


def problem(name):
    if name == "digits":
        from sklearn.datasets import load_digits

        X = load_digits().data
    else:
        X = linvae.data.load_mnist_subset()[0].reshape(-1, 784).astype(float)
    X = X - X.mean(axis=0)
    ev = np.sort(np.linalg.eigvalsh(np.cov(X.T, bias=True)))[::-1]
    ev = ev[ev > 1e-10 * ev[0]]
    return X, dict(latent_dim=5, beta=1.0, eta_dec=float(np.sqrt(ev[5:].mean())))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--momentum", type=float, default=train.TrainOptions.momentum)
    parser.add_argument("--steps", type=int, default=20000)
    args = parser.parse_args()
    # TrainOptions.momentum is not a fit() keyword: hand the kernels options with the one requested
    batch = train.train_batch
    train.train_batch = lambda *a: batch(*a[:-1], dataclasses.replace(a[-1], momentum=args.momentum))
    for name in ("digits", "mnist"):
        X, kw = problem(name)
        closed = linvae.fit(X, **kw)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", linvae.ConvergenceWarning)
            trained = linvae.fit(X, solver="gd", max_iter=args.steps, tol=0, gtol=0, **kw)
        print(f"{name}: momentum {args.momentum:g}, {trained.n_iter} steps, relative gap "
              f"{(trained.loss - closed.loss) / abs(closed.loss):.3g}")


if __name__ == "__main__":
    main()
