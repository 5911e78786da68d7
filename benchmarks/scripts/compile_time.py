"""Measure the Numba compile (cold) and cache-load (warm) cost of the training kernels.

Run twice: ``python benchmarks/scripts/compile_time.py --clear`` (cold: removes the on-disk cache first)
and ``python benchmarks/scripts/compile_time.py`` (warm: loads the cache).  Each measurement runs in a
fresh interpreter so nothing is compiled before it starts.
"""
import argparse
import pathlib
import shutil
import subprocess
import sys

SNIPPET = r"""
import time, numpy as np
t0 = time.perf_counter()
import linvae
from linvae.kernels import cpu
t1 = time.perf_counter()
X = np.random.default_rng(0).normal(size=(64, 5))
t2 = time.perf_counter(); linvae.fit(X, solver="gd", max_iter=1, gtol=0, tol=0); t3 = time.perf_counter()
linvae.sweep(X, beta=[1, 2, 3], solver="gd", max_iter=1, gtol=0, tol=0); t4 = time.perf_counter()
linvae.fit(X, model="mhvae", solver="adam", max_iter=1); t5 = time.perf_counter()
linvae.fit(X, solver="minibatch", epochs=1); t6 = time.perf_counter()
print(f"import {t1 - t0:.2f} s | moment kernel serial {t3 - t2:.2f} s | parallel {t4 - t3:.2f} s | "
      f"mhvae (serial, cached with the first) {t5 - t4:.2f} s | minibatch serial {t6 - t5:.2f} s")
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clear", action="store_true", help="delete the Numba cache first (cold start)")
    args = parser.parse_args()
    cache = pathlib.Path(__file__).resolve().parents[2] / "linvae" / "kernels" / "__pycache__"
    if args.clear and cache.exists():
        shutil.rmtree(cache)
    out = subprocess.run([sys.executable, "-c", SNIPPET], check=True, capture_output=True, text=True)
    print(("cold " if args.clear else "warm ") + out.stdout.strip())


if __name__ == "__main__":
    main()
