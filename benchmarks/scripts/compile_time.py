"""Cold (compile) and warm (cache-load) cost of first use, per model kind, plus data loading and
the README's main job — optionally side by side with an older commit.

Every measurement runs in a fresh interpreter with its own empty ``NUMBA_CACHE_DIR`` (cold),
then once more with the same directory (warm), so nothing is compiled or cached before it starts
and the repository's own ``__pycache__`` is never touched. The embedded MNIST cache
(``LINVAE_CACHE_DIR``) is likewise fresh per measurement.

    python benchmarks/scripts/compile_time.py                       # this checkout
    python benchmarks/scripts/compile_time.py --compare 5034eab     # before (git worktree) vs after
    python benchmarks/scripts/compile_time.py --compare 5034eab --main-job --markdown

``--compare REF`` checks REF out into a temporary ``git worktree`` (removed afterwards) and
alternates before/after per row, so both see the same machine state.
"""
import argparse
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]

# name -> (description, code timed in a fresh interpreter after `import numpy as np, linvae`)
CASES = {
    "vae_gd": ("first `fit(X, solver=\"gd\")`, VAE", "linvae.fit(X, solver='gd', max_iter=1)"),
    "vae_adam": ("first `fit(X, solver=\"adam\")`, VAE", "linvae.fit(X, solver='adam', max_iter=1)"),
    "cvae_adam": ("first `fit(X, Y, solver=\"adam\")`, CVAE", "linvae.fit(X, Y, solver='adam', max_iter=1)"),
    "mhvae_adam": ("first `fit(X, model=\"mhvae\", solver=\"adam\")`",
                   "linvae.fit(X, model='mhvae', solver='adam', max_iter=1)"),
    "sweep_parallel": ("first 64-config sweep (parallel variant where chosen)",
                       "linvae.sweep(X, beta=np.linspace(0.5, 2, 64), solver='adam', max_iter=1)"),
    "minibatch": ("first `fit(X, solver=\"minibatch\")`", "linvae.fit(X, solver='minibatch', epochs=1)"),
    "data": ("`load_mnist_subset()` (first call / later processes)",
             "__import__('linvae.data').data.load_mnist_subset()"),
}

SNIPPET = r"""
import time, warnings
warnings.simplefilter("ignore")
t0 = time.perf_counter()
import numpy as np, linvae
rng = np.random.default_rng(0)
X = rng.normal(size=(200, 40)); Y = X[:, :10] @ rng.normal(size=(10, 30)) + rng.normal(size=(200, 30))
t1 = time.perf_counter()
{code}
t2 = time.perf_counter()
print(f"{{t1 - t0:.4f}} {{t2 - t1:.4f}}")
"""


def _env(repo, numba_cache, data_cache):
    env = dict(os.environ)
    env["PYTHONPATH"] = str(repo) + os.pathsep + env.get("PYTHONPATH", "")
    env["NUMBA_CACHE_DIR"] = str(numba_cache)
    env["LINVAE_CACHE_DIR"] = str(data_cache)
    return env


def measure(repo, code):
    """(cold seconds, warm seconds) of ``code`` in fresh interpreters with a fresh cache dir."""
    with tempfile.TemporaryDirectory(prefix="linvae-compile-") as tmp:
        env = _env(repo, pathlib.Path(tmp) / "numba", pathlib.Path(tmp) / "data")
        out = []
        for _ in range(2):                  # cold, then warm (same cache directories)
            res = subprocess.run([sys.executable, "-c", SNIPPET.format(code=code)], env=env, cwd=tmp,
                                 capture_output=True, text=True)
            if res.returncode:
                raise RuntimeError(f"measurement failed in {repo}:\n{res.stderr[-2000:]}")
            out.append(float(res.stdout.split()[-1]))
        return tuple(out)


def measure_main_job(repo):
    """Wall seconds of ``linvae reproduce fig2a --quick`` with cold Numba and data caches."""
    with tempfile.TemporaryDirectory(prefix="linvae-main-") as tmp:
        env = _env(repo, pathlib.Path(tmp) / "numba", pathlib.Path(tmp) / "data")
        t0 = time.perf_counter()
        res = subprocess.run([sys.executable, "-m", "linvae", "reproduce", "fig2a", "--quick", "--out",
                              str(pathlib.Path(tmp) / "results")], env=env, cwd=tmp, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if res.returncode:
            raise RuntimeError(f"main job failed in {repo}:\n{res.stderr[-2000:]}")
        return wall


def _worktree(ref):
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="linvae-before-"))
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tmp / "repo"), ref], check=True,
                   capture_output=True)
    return tmp / "repo"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--compare", metavar="REF", help="also measure this git ref (e.g. 5034eab) side by side")
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument("--main-job", action="store_true", help="also time `linvae reproduce fig2a --quick` cold")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args(argv)
    repos = [("after", ROOT)]
    before = None
    if args.compare:
        before = _worktree(args.compare)
        repos.insert(0, (f"before ({args.compare})", before))
    try:
        rows = []
        for name in args.cases:
            desc, code = CASES[name]
            rows.append((desc, [measure(repo, code) for _, repo in repos]))
            print(f"{name}: " + " | ".join(f"{label} cold {c:.2f} s warm {w:.2f} s"
                                          for (label, _), (c, w) in zip(repos, rows[-1][1])), file=sys.stderr)
        if args.main_job:
            walls = [measure_main_job(repo) for _, repo in repos]
            rows.append(("`linvae reproduce fig2a --quick`, cold caches (wall)", [(w, float("nan")) for w in walls]))
    finally:
        if before is not None:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(before)], capture_output=True)
            shutil.rmtree(before.parent, ignore_errors=True)
    if args.markdown:
        head = " | ".join(f"{label} cold | {label} warm" for label, _ in repos)
        print(f"| first use | {head} |")
        print("|---|" + "---|---|" * len(repos))
    for desc, vals in rows:
        cells = " | ".join(f"{c:.2f} s | " + ("–" if w != w else f"{w:.2f} s") for c, w in vals)
        print(f"| {desc} | {cells} |" if args.markdown else f"{desc}: {cells}")


if __name__ == "__main__":
    main()
