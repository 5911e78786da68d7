"""Seconds per training epoch of the paper's ReLU MLP CVAE on the embedded 5,000-image MNIST.

``python benchmarks/scripts/torch_epoch.py [--epochs 3] [--hidden 16]`` prints the mean time of the
epochs after the first (which includes warm-up).
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from compare import torch_epoch_times  # noqa: E402

from linvae import nn as lnn  # noqa: E402
from linvae.data import load_mnist_subset, quadrant_split  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--hidden", type=int, default=16)
    args = parser.parse_args()
    images, _, meta = load_mnist_subset()
    x, y = quadrant_split(images)
    model = lnn.CVAE(196, 588, 16, hidden=args.hidden)
    times = torch_epoch_times(model, (x, y), epochs=args.epochs)
    steady = times[1:] or times
    print(f"MLP CVAE (196+588 -> h={args.hidden} -> dz=16), N={meta['N']}, batch 128, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads: "
          f"{sum(steady) / len(steady):.3f} s/epoch (first epoch {times[0]:.3f} s)")


if __name__ == "__main__":
    main()
