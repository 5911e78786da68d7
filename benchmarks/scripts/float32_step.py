"""Numba Adam step of the whitened linear VAE in float64 vs float32 (``dtype="float32"``).

    python benchmarks/scripts/float32_step.py

Prints one row per (d, B): microseconds per step in each precision (best of 5), measured side by
side in one process.
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import compare  # noqa: E402

from linvae.kernels import cpu  # noqa: E402


def run(Z, params, hyper, dims, steps, dtype):
    compare.adam_steps(cpu, Z.astype(dtype), params.astype(dtype), hyper, dims, steps)


def main():
    print("| d | B | float64 (µs/step) | float32 (µs/step) | float64 / float32 |\n|---|---|---|---|---|")
    for d, B, steps in [(16, 50, 200), (64, 50, 100), (784, 1, 20), (784, 16, 5)]:
        Z, params, hyper, dims = compare._problem(d, min(d, 16), B)
        times = []
        for dtype in (np.float64, np.float32):
            run(Z, params, hyper, dims, 2, dtype)                      # compile / warm up
            times.append(compare.best_of(lambda: run(Z, params, hyper, dims, steps, dtype), 5) / steps)
        print(f"| {d} | {B} | {1e6 * times[0]:.1f} | {1e6 * times[1]:.1f} | {times[0] / times[1]:.2f} |")


if __name__ == "__main__":
    main()
