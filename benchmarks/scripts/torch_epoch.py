"""Seconds per training epoch of the paper's ReLU MLP CVAE on the embedded 5,000-image MNIST.

``python benchmarks/scripts/torch_epoch.py [--epochs 3] [--hidden 16]`` prints the mean time of the
epochs after the first (which includes warm-up).
"""
import argparse
import time

import torch

from linvae import nn as lnn
from linvae.data import load_mnist_subset, quadrant_split


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--hidden", type=int, default=16)
    args = parser.parse_args()
    images, _, meta = load_mnist_subset()
    x, y = quadrant_split(images)
    model = lnn.CVAE(196, 588, 16, hidden=args.hidden)
    times = []

    class Timer(lnn.Trainer):
        def _epoch(self, *a, **k):
            t = time.perf_counter()
            super()._epoch(*a, **k)
            times.append(time.perf_counter() - t)

    Timer(model, lr=1e-3, epochs=args.epochs, batch_size=128, device="cpu").fit(x, y)
    steady = times[1:] or times
    print(f"MLP CVAE (196+588 -> h={args.hidden} -> dz=16), N={meta['N']}, batch 128, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads: "
          f"{sum(steady) / len(steady):.3f} s/epoch (first epoch {times[0]:.3f} s)")


if __name__ == "__main__":
    main()
