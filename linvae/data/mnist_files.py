"""Full MNIST from a user directory (IDX files, gzipped or not, or an .npz), and splits."""
import gzip
import hashlib
import os

import numpy as np

__all__ = ["load_mnist", "train_test_split", "IDX_FILES"]

#: The standard file names (each may also end in ``.gz``).
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


def _read_idx(path, digest):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    digest.update(raw)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte IDX file (bad magic number)")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path}: header says shape {shape} but the file holds {data.size} values")
    return data.reshape(shape)


def _unit_range(images, name):
    """Images as float64 in [0, 1]: integer pixels (0..255) are divided by 255; float images already
    in [0, 1] are kept as they are (dividing them again would shrink the data 255-fold)."""
    a = np.asarray(images)
    if a.dtype.kind not in "buif":
        raise TypeError(f"{name} must hold numeric pixel values, got dtype {a.dtype}")
    if a.size == 0:
        return a.astype(np.float64)
    lo, hi = float(a.min()), float(a.max())
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ValueError(f"{name} contains NaN or inf; pixel values must be finite")
    if a.dtype.kind == "f" and lo >= 0.0 and hi <= 1.0:
        return a.astype(np.float64)
    if lo >= 0.0 and hi <= 255.0 and (a.dtype.kind in "bui" or np.all(a == np.round(a))):
        return a.astype(np.float64) / 255.0
    raise ValueError(f"{name} has pixel values in [{lo:g}, {hi:g}]; expected integers 0..255 or floats in [0, 1]")


def _find(directory, name):
    for candidate in (name, name + ".gz"):
        path = os.path.join(directory, candidate)
        if os.path.exists(path):
            return path
    return None


def load_mnist(path, split="train"):
    """Full MNIST from a directory of IDX files or an ``.npz`` file.

    Parameters
    ----------
    path : str or os.PathLike
        A directory holding ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
        ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte`` (each optionally ``.gz``), or an
        ``.npz`` with ``x_train``, ``y_train``, ``x_test``, ``y_test`` (the Keras layout).
    split : {"train", "test", "all"}

    Returns
    -------
    images : ndarray (n, 784), float64 in [0, 1]
    labels : ndarray (n,), int64
    meta : dict
        ``source``, ``N``, ``shape``, ``checksum`` (SHA-256 prefix of the bytes read).

    Raises
    ------
    FileNotFoundError
        Listing the expected file names when they are missing.
    """
    path = os.fspath(path)
    if split not in ("train", "test", "all"):
        raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
    parts = ["train", "test"] if split == "all" else [split]
    digest = hashlib.sha256()
    images, labels = [], []
    if path.endswith(".npz"):
        if not os.path.exists(path):
            raise FileNotFoundError(f"MNIST file {path!r} does not exist (expected an .npz with keys {NPZ_KEYS})")
        with open(path, "rb") as f:
            digest.update(f.read())
        with np.load(path) as f:
            missing = [k for k in NPZ_KEYS if k not in f]
            if missing:
                raise KeyError(f"{path} lacks {missing}; expected keys {NPZ_KEYS}")
            for part in parts:
                images.append(np.asarray(f[f"x_{part}"]))
                labels.append(np.asarray(f[f"y_{part}"]))
    else:
        if not os.path.isdir(path):
            raise FileNotFoundError(
                f"MNIST directory {path!r} does not exist; it must hold {sum(IDX_FILES.values(), ())} "
                "(optionally .gz), or pass an .npz file")
        for part in parts:
            found = [_find(path, name) for name in IDX_FILES[part]]
            if None in found:
                missing = [n for n, p in zip(IDX_FILES[part], found) if p is None]
                raise FileNotFoundError(
                    f"MNIST files missing in {path!r}: {missing} (each may end in .gz); expected "
                    f"{sum(IDX_FILES.values(), ())}")
            images.append(_read_idx(found[0], digest))
            labels.append(_read_idx(found[1], digest))
    X = np.concatenate([_unit_range(a.reshape(len(a), -1), f"x_{part}" if path.endswith(".npz") else "images")
                        for a, part in zip(images, parts)])
    y = np.concatenate(labels).astype(np.int64)
    if X.shape[1] != 784 or len(X) != len(y):
        raise ValueError(f"unexpected MNIST shapes: images {X.shape}, labels {y.shape}")
    meta = {"source": f"MNIST ({split}) from {path}", "N": int(len(X)), "shape": [28, 28],
            "checksum": digest.hexdigest()[:16]}
    return X, y, meta


def train_test_split(*arrays, test_fraction=0.2, seed=0):
    """Split arrays with the same first dimension into train and test parts, reproducibly.

    Returns
    -------
    list
        ``[a_train, a_test, b_train, b_test, ...]``.
    """
    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        raise ValueError("all arrays must have the same number of rows")
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    perm = np.random.default_rng(seed).permutation(n)
    n_test = max(1, int(round(test_fraction * n)))
    test, train = perm[:n_test], perm[n_test:]
    out = []
    for a in arrays:
        out += [a[train], a[test]]
    return out
