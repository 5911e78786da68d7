"""How low can a cold first fit go with Numba? The floor under issue #19's ≤ 2 s goal.

Each row runs in a fresh interpreter with its own empty ``NUMBA_CACHE_DIR`` and reports the CPU
seconds (``time.process_time``, which a busy machine inflates far less than wall time) and the
wall seconds from the start of the interpreter's work to the end of the first call:

- ``numba``: importing NumPy and Numba and compiling a three-line loop (Numba's fixed cost of a
  process's first compilation);
- ``floor``: the same plus a *stripped* VAE Adam kernel written as one function: the three BLAS
  products of the VAE gradient, the Adam update and a loss-change stop, and nothing else (no GD,
  no CVAE block, no clipping, no learning-rate rules, no named-tuple state, no ``prange``);
- ``linvae``: ``import linvae`` and the first ``linvae.fit(X, solver="adam", max_iter=1)``, the
  package's real kernel (its serial VAE Adam variant, with the contract's stopping and step rules).

    python benchmarks/scripts/compile_floor.py [--repeat 2]

If ``floor`` alone is close to 2 s, the goal cannot be met by trimming the kernels: only a kernel
with no options at all approaches it.
"""
import argparse
import os
import subprocess
import sys
import tempfile

NUMBA = r"""
import time
c0, w0 = time.process_time(), time.perf_counter()
import numpy as np
from numba import njit

@njit
def first(a):
    s = 0.0
    for i in range(a.shape[0]):
        s += a[i]
    return s

first(np.ones(3))
"""

FLOOR = NUMBA + r"""
import math

@njit(nogil=True)
def kernel(Z, params, m, v, hyper, dims, loss_out, n_steps, lr, b1, b2, eps, tol):
    d, k, r = dims[0], dims[1], dims[2]
    o1, o2 = d * k, d * k + k * r
    grad = np.empty(params.shape[1])
    ws = np.empty(d * r)
    for b in range(params.shape[0]):
        row = params[b]
        beta, c2, ed2 = hyper[b, 0], hyper[b, 1], hyper[b, 2]
        bc = beta * c2
        prev = np.inf
        for t in range(1, n_steps + 1):
            U = row[:o1].reshape((d, k))
            V = row[o1:o2].reshape((k, r))
            s = row[o2:o2 + k]
            gU = grad[:o1].reshape((d, k))
            gV = grad[o1:o2].reshape((k, r))
            R = ws.reshape((d, r))
            np.dot(U, V, R)
            loss = 0.0
            for i in range(d):
                for c in range(r):
                    x = R[i, c] - Z[i, c]
                    R[i, c] = x
                    loss += x * x
            np.dot(R, V.T, gU)
            np.dot(U.T, R, gV)
            for j in range(k):
                for c in range(r):
                    loss += bc * V[j, c] * V[j, c]
                    gV[j, c] = 2.0 * gV[j, c] + 2.0 * bc * V[j, c]
            for j in range(k):
                var = math.exp(2.0 * s[j])
                col = 0.0
                for i in range(d):
                    col += U[i, j] * U[i, j]
                    gU[i, j] = 2.0 * gU[i, j] + 2.0 * var * U[i, j]
                loss += var * col + bc * var - 2.0 * beta * ed2 * s[j]
                grad[o2 + j] = 2.0 * var * (col + bc) - 2.0 * beta * ed2
            loss_out[b] = loss
            if abs(prev - loss) <= tol * max(1.0, abs(loss)):
                break
            prev = loss
            a = lr / (1.0 - b1 ** t)
            ic = 1.0 / (1.0 - b2 ** t)
            for i in range(row.shape[0]):
                gi = grad[i]
                mi = b1 * m[b, i] + (1.0 - b1) * gi
                vi = b2 * v[b, i] + (1.0 - b2) * gi * gi
                m[b, i] = mi
                v[b, i] = vi
                row[i] -= a * mi / (math.sqrt(vi * ic) + eps)

d, k, r = 40, 5, 40
P = d * k + k * r + k
kernel(np.random.rand(d, r), np.random.rand(1, P) * 0.1, np.zeros((1, P)), np.zeros((1, P)), np.ones((1, 3)),
       np.array([d, k, r]), np.zeros(1), 1, 1e-2, 0.9, 0.999, 1e-8, 1e-12)
"""

LINVAE = r"""
import time, warnings
warnings.simplefilter("ignore")
c0, w0 = time.process_time(), time.perf_counter()
import numpy as np, linvae
X = np.random.default_rng(0).normal(size=(200, 40))
linvae.fit(X, solver="adam", max_iter=1)
"""

TAIL = "\nprint(f'{time.process_time() - c0:.4f} {time.perf_counter() - w0:.4f}')\n"

CASES = {
    "numba": ("Numba's first compile (import NumPy + Numba, a 3-line loop)", NUMBA),
    "floor": ("+ a stripped one-function VAE Adam kernel (3 BLAS products, no options)", FLOOR),
    "linvae": ("`import linvae` + first `fit(X, solver=\"adam\")` (the package's kernel)", LINVAE),
}


def measure(code):
    """(CPU s, wall s) of ``code`` in a fresh interpreter with an empty Numba cache."""
    with tempfile.TemporaryDirectory(prefix="linvae-floor-") as tmp:
        env = dict(os.environ, NUMBA_CACHE_DIR=os.path.join(tmp, "numba"))
        res = subprocess.run([sys.executable, "-c", code + TAIL], env=env, cwd=tmp, capture_output=True, text=True)
        if res.returncode:
            raise RuntimeError(res.stderr[-2000:])
        cpu, wall = map(float, res.stdout.split()[-2:])
        return cpu, wall


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=2, help="measurements per row (the median is shown)")
    args = parser.parse_args(argv)
    print("| cold first use | CPU s | wall s |")
    print("|---|---:|---:|")
    for name, (desc, code) in CASES.items():
        runs = sorted(measure(code) for _ in range(args.repeat))
        cpu, wall = runs[len(runs) // 2]
        print(f"| {desc} | {cpu:.2f} | {wall:.2f} |", flush=True)


if __name__ == "__main__":
    main()
