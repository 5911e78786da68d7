"""CuPy step loop of another revision vs this one, side by side in one process (needs a GPU).

    git show 8bf4a42:linvae/kernels/array.py > linvae/kernels/_old_array.py   # then, on the GPU machine:
    python benchmarks/scripts/gpu_step_loop.py      # (delete _old_array.py afterwards)

Times 200 Adam steps of a B-point CVAE β sweep (k = 16, N = 4,000, ``tol = 0``) on
``backend="cupy"`` with the old module's ``train_batched`` and with this one's, alternating (best
of two each), and prints ms per step and the largest difference of the trained losses.
"""
import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
import linvae  # noqa: E402
from benchmarks._data import cvae_data  # noqa: E402
from linvae.kernels import _old_array, array, gpu  # noqa: E402


def main():
    import cupy as cp

    sync = cp.cuda.Device().synchronize
    warnings.simplefilter("ignore", linvae.ConvergenceWarning)
    for d, B in [(64, 1), (64, 64), (784, 64)]:
        X, Y = cvae_data(4000, d // 4, d - d // 4)
        kw = dict(beta=np.linspace(0.1, 5, B), latent_dim=16, solver="adam", max_iter=200, tol=0.0, gtol=0.0,
                  backend="cupy")
        times, losses = {"old": [], "new": []}, {}
        for name, module in [("old", _old_array), ("new", array)] * 2:
            gpu.train_batched = module.train_batched
            linvae.sweep(X, Y, **kw)
            sync()
            t0 = time.perf_counter()
            fits = linvae.sweep(X, Y, **kw)
            sync()
            times[name].append(time.perf_counter() - t0)
            losses[name] = np.array([f.loss for f in fits])
        print(f"d={d} B={B}: old {min(times['old']) * 1e3 / 200:.3f} ms/step, "
              f"new {min(times['new']) * 1e3 / 200:.3f} ms/step, "
              f"max |loss diff| {np.max(np.abs(losses['old'] - losses['new'])):.2e}", flush=True)
    gpu.train_batched = array.train_batched


if __name__ == "__main__":
    main()
