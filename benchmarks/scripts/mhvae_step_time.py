"""Warm time per Adam step of the MHVAE kernel (best of 3 × 2,000 steps), optionally side by side
with an older commit (a temporary ``git worktree``, alternating before/after twice).

    python benchmarks/scripts/mhvae_step_time.py --compare 76dcca8
"""
import argparse
import os
import pathlib
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[2]

SNIPPET = r"""
import time, warnings, numpy as np, linvae
warnings.simplefilter("ignore")
rng = np.random.default_rng(0)
for d, k in ((784, 16), (64, 8)):
    X = rng.normal(size=(2000, d)) @ rng.normal(size=(d, d)) / np.sqrt(d)
    linvae.fit(X, model="mhvae", latent_dims=(k, k), solver="adam", max_iter=5, tol=0, gtol=0)
    best = min(_timed(X, k) for _ in range(3))
    print(f"d={d} k1=k2={k}: {best / 2000 * 1e6:.1f} us/step")
"""

TIMED = r"""
def _timed(X, k):
    t = time.perf_counter()
    linvae.fit(X, model="mhvae", latent_dims=(k, k), solver="adam", max_iter=2000, tol=0, gtol=0)
    return time.perf_counter() - t
"""


def run(repo):
    env = dict(os.environ, PYTHONPATH=str(repo))
    code = "import time, linvae\n" + TIMED + SNIPPET
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=repo, capture_output=True, text=True,
                          check=True).stdout.strip()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compare", metavar="REF")
    args = parser.parse_args()
    if not args.compare:
        print(run(ROOT))
        return
    with tempfile.TemporaryDirectory(prefix="linvae-before-") as tmp:
        before = pathlib.Path(tmp) / "before"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(before), args.compare],
                       check=True, capture_output=True)
        try:
            for _ in range(2):
                for label, repo in ((f"before ({args.compare})", before), ("after", ROOT)):
                    print(label, "|", run(repo).replace("\n", " | "))
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(before)], check=True)


if __name__ == "__main__":
    main()
