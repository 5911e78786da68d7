"""Batched vs sequential training of the torch models, side by side in one run.

``python benchmarks/scripts/batched_torch.py [--epochs 2] [--n 4000] [--sizes 4 16 64]``

For each B, trains B copies of the authors' h = 16 two-branch ReLU CVAE (different β and seeds) on
MNIST-sized random data, once one by one with :class:`linvae.nn.Trainer` and once together with
:class:`linvae.nn.BatchedTrainer`, and prints the wall times and their ratio (the goal: ≥ 5× at
B = 16).  Run it with nothing else on the machine.
"""
import argparse
import time

import numpy as np


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--n", type=int, default=4000, help="training examples (batch 128)")
    p.add_argument("--sizes", type=int, nargs="+", default=[4, 16, 64])
    p.add_argument("--model", choices=["cvae", "mhvae"], default="cvae")
    args = p.parse_args(argv)
    import torch

    from linvae.nn import BatchedTrainer, TanhMHVAE, Trainer, TwoBranchCVAE

    rng = np.random.default_rng(0)
    X = rng.random((args.n, 784)).astype(np.float32)
    data = (X[:, :196], X[:, 196:]) if args.model == "cvae" else (X,)

    def make(i):
        if args.model == "cvae":
            return TwoBranchCVAE(arch="relu", hidden=16, beta=0.5 + 0.1 * i)
        return TanhMHVAE(beta2=0.5 + 0.1 * i)

    Trainer(make(0), epochs=1, device="cpu").fit(*data)                # warm-up (imports, allocator)
    print(f"model={args.model} n={args.n} epochs={args.epochs} torch threads={torch.get_num_threads()}")
    print("| B | sequential (s) | batched (s) | speed-up |")
    print("|---|---|---|---|")
    for B in args.sizes:
        t = time.perf_counter()
        for i in range(B):
            Trainer(make(i), epochs=args.epochs, seed=i, clip=0.01, device="cpu").fit(*data)
        seq = time.perf_counter() - t
        t = time.perf_counter()
        BatchedTrainer([make(i) for i in range(B)], seeds=list(range(B)), epochs=args.epochs, clip=0.01,
                       device="cpu").fit(*data)
        bat = time.perf_counter() - t
        print(f"| {B} | {seq:.2f} | {bat:.2f} | {seq / bat:.2f}× |", flush=True)


if __name__ == "__main__":
    main()
