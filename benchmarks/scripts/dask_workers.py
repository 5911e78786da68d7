"""Dask sweeps on 1 vs 2 LocalCluster workers: the 50-β linear CVAE sweep, a nonlinear quick sweep
(two ReLU experiments of ``reproduce all --quick``) and the overhead per task.

Run on a quiet machine:  python benchmarks/scripts/dask_workers.py [--steps 200]
"""
import argparse
import tempfile
import time
import warnings

import numpy as np


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=200, help="GD steps of the 50-β sweep")
    args = parser.parse_args()
    import distributed

    import linvae
    from linvae import experiments
    from linvae.data import load_mnist_subset, quadrant_split

    warnings.simplefilter("ignore")
    images, _, _ = load_mnist_subset()
    X, Y = quadrant_split(images)
    betas = np.linspace(0.1, 5, 50)
    kw = dict(beta=betas, latent_dim=64, solver="gd", max_iter=args.steps, tol=0.0, gtol=0.0)
    linvae.sweep(X, Y, **{**kw, "beta": betas[:2], "max_iter": 2})           # compile outside the timings
    t = time.perf_counter()
    linvae.sweep(X, Y, **kw)
    rows = [("50-β CVAE sweep, in process (one batch)", time.perf_counter() - t)]
    for workers in (1, 2):
        with distributed.LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=None) as cluster, \
                distributed.Client(cluster) as client:
            client.run(lambda: linvae.sweep(X[:50], Y[:50], beta=[1.0], latent_dim=4, solver="gd", max_iter=2))
            t = time.perf_counter()
            linvae.sweep(X, Y, **kw, scheduler=client, chunk_size=25)
            rows.append((f"50-β CVAE sweep, {workers} worker(s), 2 chunks of 25", time.perf_counter() - t))
            small = np.random.default_rng(0).normal(size=(200, 4))
            n = 40
            t = time.perf_counter()
            linvae.sweep(small, beta=np.linspace(0.1, 4, n), scheduler=client, chunk_size=1)
            per_task = (time.perf_counter() - t) / n
            t = time.perf_counter()
            linvae.sweep(small, beta=np.linspace(0.1, 4, n), chunk_size=1)
            rows.append((f"overhead per task ({workers} worker(s); 1-config closed-form chunks)",
                         per_task - (time.perf_counter() - t) / n))
            with tempfile.TemporaryDirectory() as out:
                t = time.perf_counter()
                experiments.run_all(out, quick=True, ids=["fig2b", "table4"], scheduler=client)
                rows.append((f"nonlinear quick sweep (fig2b + table4), {workers} worker(s)", time.perf_counter() - t))
    with tempfile.TemporaryDirectory() as out:
        t = time.perf_counter()
        experiments.run_all(out, quick=True, ids=["fig2b", "table4"])
        rows.append(("nonlinear quick sweep (fig2b + table4), in process", time.perf_counter() - t))
    width = max(len(r[0]) for r in rows)
    print(f"| {'case'.ljust(width)} | seconds |\n|{'-' * (width + 2)}|---------|")
    for name, sec in rows:
        print(f"| {name.ljust(width)} | {sec:7.3f} |")


if __name__ == "__main__":
    main()
