"""Where a cold first fit's compile time goes, per compiled function.

    python benchmarks/scripts/compile_breakdown.py [--model vae|cvae|mhvae] [--solver adam|gd]

Runs the first ``linvae.fit(..., max_iter=1)`` in a fresh interpreter with an empty
``NUMBA_CACHE_DIR`` and prints the fit's wall time, then every function Numba compiled during it
(Numba's "numba:compile" events: inclusive wall seconds, a caller's time contains its callees'),
and for the kernel loop itself its compiler passes (``pipeline_times``: type inference, native
lowering with LLVM, inlining, …). Functions inlined into their caller do not appear on their own.
"""
import argparse
import os
import subprocess
import sys
import tempfile

CHILD = r"""
import sys, time
import numpy as np
import linvae
from numba.core import event
from linvae.kernels import cpu

model, solver = sys.argv[1], sys.argv[2]
rng = np.random.default_rng(0)
X = rng.normal(size=(100, 5))
Y = rng.normal(size=(100, 3)) if model == "cvae" else None
with event.install_recorder("numba:compile") as rec:
    t0 = time.perf_counter()
    linvae.fit(X, Y, model="mhvae" if model == "mhvae" else "auto", solver=solver, max_iter=1)
    wall = time.perf_counter() - t0
print(f"first fit ({model}, {solver}): {wall:.2f} s wall")
starts, rows = {}, []
for ts, ev in rec.buffer:
    disp = ev.data.get("dispatcher")
    name = disp.py_func.__qualname__ if disp is not None else str(ev.data)
    key = (name, str(ev.data.get("args")))
    if ev.is_start:
        starts[key] = ts
    else:
        rows.append((ts - starts.pop(key), name))
print("compiled functions (inclusive s):")
for seconds, name in sorted(rows, reverse=True)[:12]:
    print(f"  {seconds:6.3f}  {name}")
for key, disp in cpu._KERNELS.items():
    for cres in disp.overloads.values():
        for passes in cres.metadata["pipeline_times"].values():
            top = sorted(passes.items(), key=lambda kv: -kv[1].run)[:4]
            print(f"loop {disp.py_func.__name__} passes: " + ", ".join(f"{k} {v.run:.3f} s" for k, v in top))
"""


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["vae", "cvae", "mhvae"], default="vae")
    parser.add_argument("--solver", choices=["adam", "gd"], default="adam")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        subprocess.run([sys.executable, "-W", "ignore", "-c", CHILD, args.model, args.solver], env=env, check=True)


if __name__ == "__main__":
    main()
