"""Full-MNIST loaders (IDX, gzipped IDX, NPZ), splits, masked images and synthetic pairs."""
import gzip

import numpy as np
import pytest

from linvae.data import (IDX_FILES, correlated_pairs, load_mnist, masked_image, quadrant_split,
                         train_test_split)


def _write_idx(path, array, compress):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    if compress:
        with gzip.open(str(path) + ".gz", "wb") as f:
            f.write(raw)
    else:
        path.write_bytes(raw)


def _fake_mnist(rng, n):
    return rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8), rng.integers(0, 10, size=n, dtype=np.uint8)


@pytest.mark.parametrize("compress", [False, True])
def test_idx_loader_reads_what_was_written(tmp_path, compress):
    rng = np.random.default_rng(0)
    parts = {"train": _fake_mnist(rng, 12), "test": _fake_mnist(rng, 5)}
    for part, (images, labels) in parts.items():
        _write_idx(tmp_path / IDX_FILES[part][0], images, compress)
        _write_idx(tmp_path / IDX_FILES[part][1], labels, compress)
    X, y, meta = load_mnist(tmp_path, split="train")
    np.testing.assert_array_equal(X, parts["train"][0].reshape(12, -1) / 255.0)
    np.testing.assert_array_equal(y, parts["train"][1])
    assert meta["N"] == 12 and meta["shape"] == [28, 28] and len(meta["checksum"]) == 16
    X_all, y_all, _ = load_mnist(tmp_path, split="all")
    assert X_all.shape == (17, 784) and X_all.min() >= 0 and X_all.max() <= 1
    np.testing.assert_array_equal(y_all[12:], parts["test"][1])


def test_npz_loader_and_checksum(tmp_path):
    rng = np.random.default_rng(1)
    (xtr, ytr), (xte, yte) = _fake_mnist(rng, 6), _fake_mnist(rng, 4)
    np.savez(tmp_path / "mnist.npz", x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
    X, y, meta = load_mnist(tmp_path / "mnist.npz", split="test")
    np.testing.assert_array_equal(X, xte.reshape(4, -1) / 255.0)
    assert load_mnist(tmp_path / "mnist.npz", split="test")[2]["checksum"] == meta["checksum"]
    np.savez(tmp_path / "other.npz", x_train=xtr, y_train=ytr, x_test=xte[:3], y_test=yte[:3])
    assert load_mnist(tmp_path / "other.npz", split="test")[2]["checksum"] != meta["checksum"]


def test_missing_files_error_lists_expected_names(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        load_mnist(tmp_path)
    for name in IDX_FILES["train"]:
        assert name in str(info.value)
    with pytest.raises(FileNotFoundError, match="x_train"):
        load_mnist(tmp_path / "absent.npz")
    with pytest.raises(ValueError, match="split"):
        load_mnist(tmp_path, split="validation")


def test_train_test_split_is_reproducible_and_disjoint():
    X, y = np.arange(100).reshape(50, 2), np.arange(50)
    a = train_test_split(X, y, test_fraction=0.2, seed=3)
    b = train_test_split(X, y, test_fraction=0.2, seed=3)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    xtr, xte, ytr, yte = a
    assert len(yte) == 10 and len(ytr) == 40 and set(ytr).isdisjoint(yte)
    np.testing.assert_array_equal(xtr[:, 0] // 2, ytr)
    assert not np.array_equal(train_test_split(X, y, seed=4)[3], yte)


def test_masked_image_keeps_only_the_condition_quarter():
    images = np.random.default_rng(2).random((3, 784)) + 0.1
    masked = masked_image(images)
    x, y = quadrant_split(masked)
    np.testing.assert_array_equal(x, quadrant_split(images)[0])
    assert np.all(y == 0)


@pytest.mark.parametrize("kind,rho", [("identical", 1.0), ("rho=1/2", 0.5), ("rho=1/8", 0.125), ("random", 0.0)])
def test_correlated_pairs(kind, rho):
    x, y, meta = correlated_pairs(kind, n=4000, dim=8, seed=0)
    assert x.shape == y.shape == (4000, 8) and meta["rho"] == rho
    corr = np.mean([np.corrcoef(x[:, j], y[:, j])[0, 1] for j in range(8)])
    assert corr == pytest.approx(rho, abs=0.03)
    again = correlated_pairs(kind, n=4000, dim=8, seed=0)
    np.testing.assert_array_equal(again[0], x)
    with pytest.raises(ValueError, match="kind"):
        correlated_pairs("rho=1/3")


@pytest.mark.parametrize("kind", ["float_unit", "float_255", "uint8", "bad_range", "negative"])
def test_npz_images_are_scaled_to_unit_range_once(tmp_path, kind):
    """Issue 17: float images already in [0, 1] were divided by 255 a second time."""
    rng = np.random.default_rng(3)
    raw = rng.integers(0, 256, size=(4, 28, 28))
    xtr = {"float_unit": raw / 255.0, "float_255": raw.astype(np.float32), "uint8": raw.astype(np.uint8),
           "bad_range": raw * 2.0 + 0.5, "negative": raw / 255.0 - 0.5}[kind]
    labels = np.arange(4)
    np.savez(tmp_path / "m.npz", x_train=xtr, y_train=labels, x_test=xtr, y_test=labels)
    if kind in ("bad_range", "negative"):
        with pytest.raises(ValueError, match=r"x_train.*pixel values"):
            load_mnist(tmp_path / "m.npz")
        return
    X, _, _ = load_mnist(tmp_path / "m.npz")
    np.testing.assert_allclose(X, raw.reshape(4, -1) / 255.0, rtol=1e-7 if kind == "float_255" else 1e-15)
