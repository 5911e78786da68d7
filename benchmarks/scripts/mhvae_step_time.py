"""Warm time per Adam step of the MHVAE kernel (best of 3 × 2,000 steps), optionally side by side
with an older commit (a temporary ``git worktree``, alternating before/after twice).

    python benchmarks/scripts/mhvae_step_time.py --compare 76dcca8
    python benchmarks/scripts/mhvae_step_time.py --model cvae --compare 7af7227

``--model vae`` or ``cvae`` times the VAE/CVAE kernel the same way (the CVAE predicts the last
quarter of the columns from the rest).
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
    _timed(X, k, 5)
    best = min(_timed(X, k, 2000) for _ in range(3))
    print(f"{MODEL} d={d} k={k}: {best / 2000 * 1e6:.1f} us/step")
"""

TIMED = r"""
def _timed(X, k, steps):
    if MODEL == "mhvae":
        data, kw = (X,), dict(model="mhvae", latent_dims=(k, k))
    elif MODEL == "cvae":
        data, kw = (X[:, : 3 * X.shape[1] // 4], X[:, 3 * X.shape[1] // 4:]), dict(latent_dim=k)
    else:
        data, kw = (X,), dict(latent_dim=k)
    t = time.perf_counter()
    linvae.fit(*data, solver="adam", max_iter=steps, tol=0, gtol=0, **kw)
    return time.perf_counter() - t
"""


def run(repo, model="mhvae"):
    env = dict(os.environ, PYTHONPATH=str(repo))
    code = f"import time, linvae\nMODEL = {model!r}\n" + TIMED + SNIPPET
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=repo, capture_output=True, text=True,
                          check=True).stdout.strip()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compare", metavar="REF")
    parser.add_argument("--model", choices=["vae", "cvae", "mhvae"], default="mhvae")
    args = parser.parse_args()
    if not args.compare:
        print(run(ROOT, args.model))
        return
    with tempfile.TemporaryDirectory(prefix="linvae-before-") as tmp:
        before = pathlib.Path(tmp) / "before"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(before), args.compare],
                       check=True, capture_output=True)
        try:
            for _ in range(2):
                for label, repo in ((f"before ({args.compare})", before), ("after", ROOT)):
                    print(label, "|", run(repo, args.model).replace("\n", " | "))
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(before)], check=True)


if __name__ == "__main__":
    main()
