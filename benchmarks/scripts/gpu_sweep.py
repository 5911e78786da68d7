"""CuPy vs Numba moment-space training, side by side in one process, on a machine with a GPU.

    python benchmarks/scripts/gpu_sweep.py [--steps 300] [--json out.json]

For each (B, d): a B-point β sweep of the linear CVAE (d_x = d/4, d_y = 3d/4, k = 16, N = 4,000,
the data of ``benchmarks/bench_gpu.py``) trained for ``--steps`` Adam steps (``tol=0``, so every
configuration runs all of them) with ``backend="cupy"`` and ``backend="numba"``. Times are the
best of 3 (of 1 where B·d² ≥ 1e7) after one warm-up call; Numba is skipped where B·d² exceeds
``--numba-max`` (the first call's time, with CuPy's kernel compilation, is
reported as ``cold``). It also times where a CuPy fit's d×d work goes: the moments of CuPy
input (computed on the GPU, copied to the host), the host's eigendecomposition, and the
whole closed-form fit (N = 60,000, d = 784), printed first. Prints a Markdown table; ``--json`` writes the rows.
"""
import argparse
import json
import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
import linvae  # noqa: E402
from benchmarks._data import cvae_data  # noqa: E402


def _timed(fn, sync):
    t0 = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - t0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 64, 1024])
    parser.add_argument("--dims", type=int, nargs="+", default=[64, 784])
    parser.add_argument("--numba-max", type=float, default=1e8,
                        help="skip Numba where B·d² exceeds this (it takes minutes there)")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    import cupy as cp

    sync = cp.cuda.Device().synchronize
    # where the d×d work of a CuPy fit goes (closed form, N = 60,000, d = 784)
    from linvae import stats

    X = cp.asarray(np.random.default_rng(0).normal(size=(60_000, 784)) * np.linspace(3.0, 0.05, 784))
    linvae.fit(X, beta=1.0, latent_dim=16)                                     # warm-up
    split = {
        "moments_on_gpu_to_host_s": min(_timed(lambda: linvae.Moments.from_arrays(X), sync) for _ in range(3)),
    }
    mom = linvae.Moments.from_arrays(X)
    split["host_eigh_s"] = min(_timed(lambda: stats.resolved_eigh(mom.xx), sync) for _ in range(3))   # uncached
    split["cupy_eigh_s"] = min(_timed(lambda: cp.linalg.eigh(cp.asarray(mom.xx)), sync) for _ in range(3))
    split["fit_closed_form_s"] = min(_timed(lambda: linvae.fit(X, beta=1.0, latent_dim=16), sync) for _ in range(3))
    adam = lambda: linvae.fit(X, beta=1.0, latent_dim=16, solver="adam", max_iter=2000)  # noqa: E731
    split["fit_adam_2000_steps_s"] = min(_timed(adam, sync) for _ in range(2))
    print("\n".join(f"{k}: {v:.4f}" for k, v in split.items()) + "\n", flush=True)
    rows = []
    print(f"| d | B | numba (s) | cupy cold (s) | cupy (s) | numba / cupy |\n|---|---|---|---|---|---|", flush=True)
    for d in args.dims:
        X, Y = cvae_data(4_000, d // 4, d - d // 4)
        for B in args.sizes:
            beta = np.linspace(0.1, 5, B)
            kw = dict(beta=beta, latent_dim=16, solver="adam", max_iter=args.steps, tol=0.0, gtol=0.0)
            times = {}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", linvae.ConvergenceWarning)
                for backend in ("cupy", "numba"):
                    if backend == "numba" and B * d * d > args.numba_max:
                        times["numba"] = times["numba_cold"] = float("nan")
                        continue
                    run = lambda: linvae.sweep(X, Y, backend=backend, **kw)  # noqa: E731
                    cold = _timed(run, sync)
                    repeats = 3 if B * d * d < 1e7 else 1
                    times[backend] = min(_timed(run, sync) for _ in range(repeats))
                    times[backend + "_cold"] = cold
            row = dict(d=d, B=B, steps=args.steps, numba_s=times["numba"], cupy_s=times["cupy"],
                       cupy_cold_s=times["cupy_cold"], ratio=times["numba"] / times["cupy"])
            rows.append(row)
            print(f"| {d} | {B} | {row['numba_s']:.3f} | {row['cupy_cold_s']:.3f} | {row['cupy_s']:.4f} | "
                  f"{row['ratio']:.1f}× |", flush=True)

    if args.json:
        with open(args.json, "w") as fh:
            json.dump(dict(rows=rows, split=split, device=cp.cuda.runtime.getDeviceProperties(0)["name"].decode(),
                           cupy=cp.__version__, numba_threads=__import__("numba").get_num_threads()), fh, indent=1)


if __name__ == "__main__":
    main()
