"""Sufficient statistics of the linear models: second moments, whitening, θ spectra.

The losses of every linear model of the paper depend on the data only through the second
moments ``E[xxᵀ]``, ``E[xyᵀ]`` and ``E[yyᵀ]``.  :class:`Moments` computes them once, in float64,
from in-memory arrays or from an iterator of chunks (memory independent of ``N``), and the
rest of the package works on these small ``d × d`` matrices.

This module owns the moments and their sources (arrays, chunk iterators, CuPy streaming,
:func:`moments_from_dask`) and the θ spectra cut to the numerical range. Whether a cut
direction matters for a theorem's answer is decided by :mod:`linvae._conditioning`.
"""
from dataclasses import dataclass, field

import numpy as np

from . import _config
from ._deps import import_optional
from ._validation import SCALE_MIN, check_data, check_pair, check_sparse, is_sparse

__all__ = [
    "Moments",
    "MomentAccumulator",
    "range_eigh",
    "vae_spectrum",
    "cvae_residual",
    "cvae_x_range",
    "resolved_eigh",
    "sign_flip",
    "moments_from_dask",
]


class MomentAccumulator:
    """Streaming, mergeable accumulator of first and second moments (float64).

    Uses the pairwise update of Chan, Golub & LeVeque (1979) on centred scatter matrices, so
    it is stable whether or not the final moments are centred, and two accumulators can be
    merged (the basis of chunked and tree-reduced accumulation).

    Examples
    --------
    >>> import numpy as np
    >>> acc = MomentAccumulator()
    >>> for chunk in np.array_split(np.random.default_rng(0).normal(size=(100, 3)), 4):
    ...     acc.add(chunk)
    >>> m = acc.finalize()
    >>> m.n
    100
    """

    def __init__(self):
        self.n = 0
        self._mean_x = self._mean_y = None
        self._cxx = self._cxy = self._cyy = None
        self._has_y = None
        self._amax_x = self._amax_y = None     # largest |value| per column (range checks)

    #: rows per block of the centred products (bounds the temporaries to a few MB)
    BLOCK_BYTES = 1 << 23

    def add(self, X, Y=None):
        """Add a chunk of samples (rows of ``X`` and, for conditional models, ``Y``).

        The input is validated without a copy when it already is C-contiguous float64; the
        centred scatter is accumulated over row blocks, so the temporaries stay small.
        """
        if is_sparse(X) or is_sparse(Y):
            return self.merge(_sparse_chunk(X, Y))
        if Y is None:
            X = check_data(X, "X", copy=False)
        else:
            X = check_data(X, "X", copy=False)
            Y = check_data(Y, "Y", copy=False)
            if X.shape[0] != Y.shape[0]:
                check_pair(X, Y)   # raises the standard message
        other = MomentAccumulator()
        other.n = X.shape[0]
        other._has_y = Y is not None
        other._mean_x = X.mean(axis=0)
        other._amax_x = _column_amax(X)
        other._cxx = np.zeros((X.shape[1], X.shape[1]))
        if Y is not None:
            other._mean_y = Y.mean(axis=0)
            other._amax_y = _column_amax(Y)
            other._cxy = np.zeros((X.shape[1], Y.shape[1]))
            other._cyy = np.zeros((Y.shape[1], Y.shape[1]))
        width = X.shape[1] + (0 if Y is None else Y.shape[1])
        step = max(256, self.BLOCK_BYTES // (8 * width))
        with np.errstate(over="ignore", invalid="ignore"):    # overflow is reported by finalize
            for start in range(0, X.shape[0], step):
                Xc = X[start:start + step] - other._mean_x
                other._cxx += Xc.T @ Xc
                if Y is not None:
                    Yc = Y[start:start + step] - other._mean_y
                    other._cxy += Xc.T @ Yc
                    other._cyy += Yc.T @ Yc
            self.merge(other)
        return self

    def merge(self, other):
        """Merge another accumulator into this one (in place) and return self."""
        if other.n == 0:
            return self
        if self.n == 0:
            self.n, self._has_y = other.n, other._has_y
            self._mean_x, self._mean_y = other._mean_x.copy(), None if other._mean_y is None else other._mean_y.copy()
            self._cxx = other._cxx.copy()
            self._cxy = None if other._cxy is None else other._cxy.copy()
            self._cyy = None if other._cyy is None else other._cyy.copy()
            self._amax_x = None if other._amax_x is None else other._amax_x.copy()
            self._amax_y = None if other._amax_y is None else other._amax_y.copy()
            return self
        if other._has_y != self._has_y:
            raise ValueError("cannot merge chunks with Y and chunks without Y")
        if other._mean_x.shape != self._mean_x.shape or (
            self._has_y and other._mean_y.shape != self._mean_y.shape
        ):
            raise ValueError(
                "chunks must all have the same number of features, got "
                f"{self._mean_x.shape[0]} and {other._mean_x.shape[0]} for X"
            )
        na, nb = self.n, other.n
        n = na + nb
        dx = other._mean_x - self._mean_x
        self._cxx += other._cxx + np.outer(dx, dx) * (na * nb / n)
        self._mean_x += dx * (nb / n)
        if self._has_y:
            dy = other._mean_y - self._mean_y
            self._cxy += other._cxy + np.outer(dx, dy) * (na * nb / n)
            self._cyy += other._cyy + np.outer(dy, dy) * (na * nb / n)
            self._mean_y += dy * (nb / n)
        self.n = n
        self._amax_x = _max_or_none(self._amax_x, other._amax_x)
        self._amax_y = _max_or_none(self._amax_y, other._amax_y)
        return self

    def finalize(self, center=False):
        """Return the :class:`Moments` of everything added so far."""
        if self.n == 0:
            raise ValueError("no samples were added; at least one sample is required")
        n = self.n

        def second(c, ma, mb):
            s = c / n
            if not center:
                s = s + np.outer(ma, mb)
            return s

        with np.errstate(over="ignore", invalid="ignore"):
            xx = _symmetrize(second(self._cxx, self._mean_x, self._mean_x))
            xy = yy = mean_y = None
            if self._has_y:
                xy = second(self._cxy, self._mean_x, self._mean_y)
                yy = _symmetrize(second(self._cyy, self._mean_y, self._mean_y))
                mean_y = self._mean_y.copy()
        width = xx.shape[0] + (0 if yy is None else yy.shape[0])
        check_moment_range(xx, self._amax_x, "X", width, self._cxx)
        if self._has_y:
            check_moment_range(yy, self._amax_y, "Y", width, self._cyy)
            if not np.all(np.isfinite(xy)):
                raise ValueError("the cross moment E[xyᵀ] overflows float64; rescale X or Y by a power of two")
        return Moments(
            n=n, xx=xx, xy=xy, yy=yy, mean_x=self._mean_x.copy(), mean_y=mean_y, centered=bool(center)
        )


def _sparse_chunk(X, Y):
    """The accumulator of a chunk given as scipy.sparse matrices (either or both of ``X``, ``Y``),
    without densifying them: the scatter is ``AᵀB − N·μ_a μ_bᵀ`` from the sparse product (the
    centred form of the dense path would fill the matrix in)."""
    def valid(A, name):
        return check_sparse(A, name) if is_sparse(A) else check_data(A, name, copy=False)

    X = valid(X, "X")
    Y = None if Y is None else valid(Y, "Y")
    if Y is not None and X.shape[0] != Y.shape[0]:
        raise ValueError(f"X and Y must have the same number of samples, got X with {X.shape[0]} and "
                         f"Y with {Y.shape[0]} rows")
    n = X.shape[0]

    def mean(A):
        return np.asarray(A.sum(axis=0), dtype=np.float64).ravel() / n

    def amax(A):
        return np.asarray(abs(A).max(axis=0).todense()).ravel() if is_sparse(A) else _column_amax(A)

    def scatter(A, B, ma, mb):
        product = A.T @ B
        product = product.toarray() if is_sparse(product) else np.asarray(product)
        return product - n * np.outer(ma, mb)

    acc = MomentAccumulator()
    acc.n, acc._has_y = n, Y is not None
    acc._mean_x, acc._amax_x = mean(X), amax(X)
    with np.errstate(over="ignore", invalid="ignore"):    # overflow is reported by finalize
        acc._cxx = _symmetrize(scatter(X, X, acc._mean_x, acc._mean_x))
        if Y is not None:
            acc._mean_y, acc._amax_y = mean(Y), amax(Y)
            acc._cxy = scatter(X, Y, acc._mean_x, acc._mean_y)
            acc._cyy = _symmetrize(scatter(Y, Y, acc._mean_y, acc._mean_y))
    return acc


def _column_amax(A):
    """Largest ``|value|`` of every column (two reductions, no temporary the size of ``A``)."""
    return np.maximum(A.max(axis=0), -A.min(axis=0)) if A.shape[0] else np.zeros(A.shape[1])


def _max_or_none(a, b):
    if a is None or b is None:
        return a if b is None else b.copy()
    return np.maximum(a, b)


#: data magnitudes whose squares are normal float64 numbers (below: products lose precision),
#: the same bound as for the scales η and σ
_DATA_MIN = SCALE_MIN


def check_moment_range(S, amax, name, width, scatter=None):
    """Raise a clear error when the second moments of data ``name`` over- or underflow float64.

    Overflow: a non-finite moment, or a mean square above ``max/(64·width)`` (the losses add
    ``width`` such terms). Underflow: a column with non-zero values whose largest magnitude is
    below ``√tiny ≈ 1.5e-154``, so its squares are subnormal or zero and carry no precision.
    Values from 1e-150 to 1e150 pass.
    """
    big = np.finfo(np.float64).max
    diag = np.diag(S)
    top = float(np.max(amax)) if amax is not None and np.size(amax) else float("nan")
    if not (np.all(np.isfinite(S)) and (scatter is None or np.all(np.isfinite(scatter)))) or \
            np.max(diag) > big / (_config.OVERFLOW_MARGIN * width):
        col = int(np.argmax(amax)) if amax is not None else int(np.argmax(np.where(np.isfinite(diag), diag, np.inf)))
        raise ValueError(
            f"{name} is too large for float64 second moments: its largest |value| is {top:.3g} (column {col}), "
            f"and the mean square {name}ᵀ{name}/N overflows (it must stay below {big / (_config.OVERFLOW_MARGIN * width):.2g}); rescale "
            f"{name} by a power of two (e.g. {name} * 2.0**-{max(1, int(np.ceil(np.log2(max(top, 2.0)))))}; "
            "the collapse pattern is unchanged when eta_dec is scaled alike)")
    if amax is not None:
        small = np.flatnonzero((amax > 0) & (amax < _DATA_MIN))
        if small.size:
            col = int(small[0])
            raise ValueError(
                f"{name} is too small for float64 second moments: column {col} has values no larger than "
                f"{float(amax[col]):.3g}, whose squares underflow (magnitudes below {_DATA_MIN:.2g} lose all "
                f"precision); rescale {name} by a power of two (e.g. {name} * 2.0**{int(np.ceil(-np.log2(float(amax[col]))))}, "
                "and eta_dec alike)")


def _on_device(a):
    """True for CuPy (or other CUDA) arrays."""
    from ._backend import is_cupy

    return is_cupy(a)


def _device_chunk(X, Y=None):
    """Means and centred scatter of CuPy arrays, computed on the GPU in float64 (host results)."""
    from ._backend import get_cupy

    cp = get_cupy()
    out = MomentAccumulator()
    arrays = [X] if Y is None else [X, Y]
    checked = []
    for name, a in zip(("X", "Y"), arrays):
        a = cp.asarray(a)
        if a.dtype.kind not in "biuf" or a.ndim != 2 or a.size == 0:
            raise ValueError(f"{name} must be a non-empty 2-D real array, got dtype {a.dtype} and shape {a.shape}")
        a = a.astype(cp.float64)
        if not bool(cp.all(cp.isfinite(a))):
            raise ValueError(f"{name} contains NaN or inf; all values must be finite")
        checked.append(a)
    if Y is not None and checked[0].shape[0] != checked[1].shape[0]:
        raise ValueError(f"X and Y must have the same number of samples, got {checked[0].shape[0]} and {checked[1].shape[0]}")
    Xd = checked[0]
    out.n = Xd.shape[0]
    out._has_y = Y is not None
    out._amax_x = cp.abs(Xd).max(axis=0).get()
    if Y is not None:
        out._amax_y = cp.abs(checked[1]).max(axis=0).get()
    mx = Xd.mean(axis=0)
    Xc = Xd - mx
    out._mean_x, out._cxx = mx.get(), (Xc.T @ Xc).get()
    if Y is not None:
        my = checked[1].mean(axis=0)
        Yc = checked[1] - my
        out._mean_y, out._cxy, out._cyy = my.get(), (Xc.T @ Yc).get(), (Yc.T @ Yc).get()
    return out


def _stream_to_device(chunks):
    """:class:`MomentAccumulator` of host chunks, computed on the GPU with pinned double buffering.

    Chunk i is validated on the host, copied into pinned staging buffer ``i % 2`` and sent with
    an asynchronous copy on CUDA stream ``i % 2``, whose mean/scatter kernels are queued behind
    the copy; before a buffer is reused its stream is synchronized and its (d × d) partial
    result merged on the host, so the host prepares chunk i + 1 while the GPU works on chunk i.
    """
    from ._backend import get_cupy

    cp = get_cupy()
    cupyx = import_optional("cupyx")
    streams = [cp.cuda.Stream(non_blocking=True) for _ in range(2)]
    staging = [{}, {}]
    pending = [None, None]
    acc = MomentAccumulator()
    amax = [None, None]          # host-side largest |value| per column of X and Y (range checks)

    def stage(slot, name, arr, stream):
        buf = staging[slot].get(name)
        if buf is None or buf.shape[0] < arr.shape[0] or buf.shape[1] != arr.shape[1]:
            buf = cupyx.empty_pinned(arr.shape, dtype=np.float64)
            staging[slot][name] = buf
        view = buf[:arr.shape[0]]
        view[...] = arr
        dev = cp.empty(arr.shape, dtype=cp.float64)
        dev.set(view, stream=stream)
        return dev

    def collect(slot):
        if pending[slot] is not None:
            streams[slot].synchronize()
            part = MomentAccumulator()
            n, has_y, arrays = pending[slot]
            part.n, part._has_y = n, has_y
            part._mean_x, part._cxx = arrays[0].get(), arrays[1].get()
            if has_y:
                part._mean_y, part._cxy, part._cyy = (a.get() for a in arrays[2:])
            acc.merge(part)
            pending[slot] = None

    for i, chunk in enumerate(chunks):
        X, Y = chunk if isinstance(chunk, tuple) else (chunk, None)
        X = check_data(X, "X", copy=False)
        if Y is not None:
            Y = check_data(Y, "Y", copy=False)
            if X.shape[0] != Y.shape[0]:
                check_pair(X, Y)
            amax[1] = _max_or_none(amax[1], _column_amax(Y))
        amax[0] = _max_or_none(amax[0], _column_amax(X))
        slot = i % 2
        collect(slot)                                  # the staging buffers of this slot are free again
        stream = streams[slot]
        Xd = stage(slot, "x", X, stream)
        with stream:
            mx = Xd.mean(axis=0)
            Xc = Xd - mx
            arrays = [mx, Xc.T @ Xc]
            if Y is not None:
                Yd = stage(slot, "y", Y, stream)
                my = Yd.mean(axis=0)
                Yc = Yd - my
                arrays += [my, Xc.T @ Yc, Yc.T @ Yc]
        pending[slot] = (X.shape[0], Y is not None, arrays)
    for slot in (0, 1):
        collect(slot)
    acc._amax_x, acc._amax_y = amax
    return acc


def _symmetrize(S):
    return 0.5 * (S + S.T)


@dataclass(frozen=True, eq=False)
class Moments:
    """Second moments of the data, the sufficient statistics of every linear model.

    Parameters
    ----------
    n : int
        Number of samples N.
    xx : ndarray of shape (dx, dx)
        ``E[xxᵀ]`` (sample mean; centred if ``centered``).
    xy : ndarray of shape (dx, dy) or None
        ``E[xyᵀ]`` for conditional models.
    yy : ndarray of shape (dy, dy) or None
        ``E[yyᵀ]``.
    mean_x, mean_y : ndarray or None
        Sample means (always recorded; subtracted only when ``centered``).
    centered : bool
        Whether the means were removed.  The paper's models have no bias, so the default is
        **uncentred** second moments; centre if your model should ignore the mean.
    _cache : dict
        Private cache of eigendecompositions (leave it out).

    Notes
    -----
    Losses depend on the data only through second moments, so full-batch training
    and all closed forms run on these ``d × d`` matrices.
    """

    n: int
    xx: np.ndarray
    xy: np.ndarray = None
    yy: np.ndarray = None
    mean_x: np.ndarray = None
    mean_y: np.ndarray = None
    centered: bool = False
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_arrays(cls, X, Y=None, *, center=False, chunk_size=None):
        """Compute the moments of in-memory arrays.

        Parameters
        ----------
        X : array_like of shape (N, dx)
        Y : array_like of shape (N, dy), optional
        center : bool, default False
            Subtract the sample means first.
        chunk_size : int, optional
            Process this many rows at a time (bounds temporary memory).
        """
        acc = MomentAccumulator()
        if _on_device(X) or (Y is not None and _on_device(Y)):
            acc.merge(_device_chunk(X, Y))
        elif chunk_size is None:
            acc.add(X, Y)
        else:
            X = X if is_sparse(X) else np.asarray(X)
            from ._validation import check_int

            step = check_int(chunk_size, "chunk_size")
            Ya = None if Y is None or is_sparse(Y) else np.asarray(Y)
            if Ya is not None and Ya.shape[:1] != X.shape[:1]:
                check_pair(X, Ya)  # raises the standard message
            for start in range(0, max(X.shape[0], 1), step):
                acc.add(X[start:start + step], None if Ya is None else Ya[start:start + step])
        return acc.finalize(center=center)

    @classmethod
    def from_chunks(cls, chunks, *, center=False, device=False):
        """Accumulate moments from an iterable of ``X`` chunks or ``(X, Y)`` pairs.

        Memory use is independent of the total number of samples.

        Parameters
        ----------
        chunks : iterable of ndarray or (ndarray, ndarray)
        center : bool
        device : bool
            Stream host chunks to the GPU through two pinned (page-locked) staging buffers on two
            CUDA streams, so the copy of one chunk overlaps the products of the previous one;
            the means and centred scatters are computed on the GPU in float64 and merged on the
            host (needs ``pip install "linvae[cuda12]"``).
        """
        if device:
            return _stream_to_device(chunks).finalize(center=center)
        acc = MomentAccumulator()
        for chunk in chunks:
            if isinstance(chunk, tuple):
                acc.add(*chunk)
            else:
                acc.add(chunk)
        return acc.finalize(center=center)

    @classmethod
    def from_matrices(cls, xx, xy=None, yy=None, *, n=1):
        """Wrap given second-moment matrices (population moments, tests, theory studies).

        ``xx`` (and, with y, the joint matrix ``[[xx, xy], [xyᵀ, yy]]``) must be symmetric positive
        semi-definite up to round-off (eigenvalues of the equilibrated matrix ≥ −1e-10·max), and
        ``n`` an integer ≥ 1.
        """
        from ._validation import check_int

        n = check_int(n, "n")
        xx = _check_psd(xx, "xx")
        if (xy is None) != (yy is None):
            raise ValueError("xy and yy must be given together (both or neither)")
        if xy is not None:
            yy = _check_psd(yy, "yy")
            xy = np.array(xy, dtype=np.float64)
            if xy.shape != (xx.shape[0], yy.shape[0]):
                raise ValueError(f"xy must have shape {(xx.shape[0], yy.shape[0])}, got {xy.shape}")
            if not np.all(np.isfinite(xy)):
                raise ValueError("xy contains NaN or inf; all values must be finite")
            _check_semidefinite(np.block([[xx, xy], [xy.T, yy]]), "the joint matrix [[xx, xy], [xyᵀ, yy]]")
        width = xx.shape[0] + (0 if yy is None else yy.shape[0])
        check_moment_range(xx, None, "xx", width)
        if yy is not None:
            check_moment_range(yy, None, "yy", width)
        return cls(n=n, xx=xx, xy=xy, yy=yy)

    @property
    def dx(self):
        """Dimension of x."""
        return self.xx.shape[0]

    @property
    def dy(self):
        """Dimension of y (None without y)."""
        return None if self.yy is None else self.yy.shape[0]

    @property
    def has_y(self):
        return self.yy is not None

    def spectrum(self, rtol=None) -> tuple:
        """Compute θ of the VAE: ``√eigenvalues(E[xxᵀ])`` in the range of ``E[xxᵀ]``, with eigenvectors.

        Parameters
        ----------
        rtol : float, optional
            Relative rank tolerance (default ``linvae._config.RANK_RTOL``).

        Returns
        -------
        theta : ndarray of shape (r,)
            The spectrum θ, descending.
        P : ndarray of shape (dx, r)
            Eigenvectors (see :func:`vae_spectrum`).
        """
        return vae_spectrum(self, rtol)

    def residual(self, rtol=None) -> tuple:
        """Compute the CVAE residual moment ``E`` and regression ``E[yxᵀ]E[xxᵀ]⁺``.

        Parameters
        ----------
        rtol : float, optional
            Relative rank tolerance (default ``linvae._config.RANK_RTOL``).

        Returns
        -------
        tuple
            ``(E, U2, theta, ...)`` as returned by :func:`cvae_residual`.
        """
        return cvae_residual(self, rtol)


def _check_psd(S, name):
    S = np.array(S, dtype=np.float64)
    if S.ndim != 2 or S.shape[0] != S.shape[1] or S.shape[0] < 1:
        raise ValueError(f"{name} must be a square (d, d) matrix, got shape {S.shape}")
    if not np.all(np.isfinite(S)):
        raise ValueError(f"{name} contains NaN or inf; all values must be finite")
    if not np.allclose(S, S.T, rtol=_config.PSD_TOL, atol=_config.SYMMETRY_ATOL * max(1.0, np.abs(S).max())):
        raise ValueError(f"{name} must be symmetric")
    S = _symmetrize(S)
    _check_semidefinite(S, name)
    return S


def _check_semidefinite(S, name):
    """Second moments are PSD: reject eigenvalues of the equilibrated matrix below −1e-10·max."""
    D = _pow2_scales(np.abs(np.diag(S)).copy())
    if np.any(np.diag(S) < 0):
        j = int(np.argmin(np.diag(S)))
        raise ValueError(f"{name} must be positive semi-definite (a second-moment matrix), but diagonal entry "
                         f"{j} is {float(np.diag(S)[j])!r} < 0")
    mu = np.linalg.eigvalsh(_symmetrize(S / D[:, None] / D[None, :]))
    if mu.size and mu[0] < -_config.PSD_TOL * max(mu[-1], 0.0):
        raise ValueError(f"{name} must be positive semi-definite (a second-moment matrix), but it has a negative "
                         f"eigenvalue ({float(mu[0]):.3g} relative to the largest {float(mu[-1]):.3g}, after "
                         "equilibrating its diagonal)")


def sign_flip(vectors):
    """Deterministic signs: make the largest-magnitude entry of every column positive.

    The svd_flip convention of scikit-learn, applied to eigenvector columns.
    """
    if vectors.shape[1] == 0:
        return vectors
    idx = np.argmax(np.abs(vectors), axis=0)
    signs = np.sign(vectors[idx, np.arange(vectors.shape[1])])
    signs[signs == 0] = 1.0
    return vectors * signs


def _rtol(rtol):
    """The validated rank tolerance (``_config.RANK_RTOL`` when None)."""
    from ._validation import check_rtol

    return _config.RANK_RTOL if rtol is None else check_rtol(rtol)


def _pow2_scales(diag):
    """Column scales ``2^round(log2 √diag)`` (1 where the diagonal is 0): an exact equilibration."""
    scales = np.ones(diag.shape)
    pos = diag > 0
    scales[pos] = np.exp2(np.round(0.5 * np.log2(diag[pos])))
    return scales


def _jacobi_singular(F):
    """Singular values (descending) and left singular vectors of a tall ``F`` to high relative accuracy.

    LAPACK's preconditioned one-sided Jacobi SVD (``dgejsv``, JOBA='F': QR with full row and
    column pivoting first), accurate for ``F = D₁ C D₂`` with ill-conditioned diagonal scalings
    and well-conditioned ``C`` (Drmač & Veselić 2008); falls back to ``numpy.linalg.svd``.
    """
    from scipy.linalg import lapack

    sva, U, _, work, _, info = lapack.dgejsv(np.asfortranarray(F), joba=2, jobu=0, jobv=3, jobr=0)
    if info != 0 or not np.all(np.isfinite(sva)):
        U, sva, _ = np.linalg.svd(F, full_matrices=False)
        return sva, U
    return sva * (work[0] / work[1]), U[:, :F.shape[1]]


def resolved_eigh(S, floor_ref=None, scales=None):
    """Eigenpairs of a PSD matrix that float64 resolves, with the relative accuracy of its equilibration.

    ``S`` is equilibrated by exact power-of-two column scales, ``S = D A D`` with ``diag(A) ≈ 1``;
    eigenvalues ``μ`` of ``A`` above the round-off floor ``64·d·eps·ref`` (``ref``: ``floor_ref``
    in units of ``A``, default ``max μ``) span the resolved part ``D A_r D = Fᵀ F``, whose
    eigenvalues are computed from ``F`` by a Jacobi SVD. Each eigenvalue is then accurate to about
    ``eps·κ(A)`` relative to *itself* (``eps·κ(S)`` relative to the largest for plain ``eigh``), so
    column scales differing by 1e12 cost no accuracy.

    Returns
    -------
    values : ndarray (k,), descending
        Eigenvalues of ``S`` in its resolved range (data units).
    vectors : ndarray (d, k)
        Orthonormal eigenvectors (deterministic signs).
    """
    d = S.shape[0]
    D = _pow2_scales(np.diag(S).copy()) if scales is None else scales
    A = _symmetrize(S / D[:, None] / D[None, :])
    mu, V = np.linalg.eigh(A)
    mu, V = mu[::-1], V[:, ::-1]
    ref = (mu[0] if mu.size else 0.0) if floor_ref is None else float(floor_ref)
    res = mu > max(_config.ROUNDOFF_FACTOR * d * np.finfo(np.float64).eps * ref, 0.0)
    if ref <= 0 or not np.any(res):
        return np.zeros(0), np.zeros((d, 0))
    if np.all(D == D[0]):                    # one scale: eigh of A is already as accurate as it gets
        values, vectors = mu[res] * D[0] ** 2, V[:, res]
    else:
        sigma, vectors = _jacobi_singular((V[:, res] * np.sqrt(mu[res])) * D[:, None])
        values = sigma ** 2
    return values.copy(), sign_flip(vectors)


def _resolved(moments, key, S, floor_ref=None):
    full = ("resolved",) + key
    if full not in moments._cache:
        moments._cache[full] = resolved_eigh(S, floor_ref)
    return moments._cache[full]


def range_eigh(S, rtol=None):
    """Eigendecomposition of a PSD matrix restricted to its numerical range.

    Parameters
    ----------
    S : ndarray of shape (d, d)
        Symmetric positive semi-definite matrix.
    rtol : float, optional
        Keep eigenvalues ``> rtol * max eigenvalue``; default ``_config.RANK_RTOL``. Directions
        float64 cannot resolve (see :func:`resolved_eigh`) are never kept.

    Returns
    -------
    values : ndarray of shape (r,)
        Kept eigenvalues, descending (each to the relative accuracy of the equilibrated ``S``).
    vectors : ndarray of shape (d, r)
        Their eigenvectors (deterministic signs).
    """
    values, vectors = resolved_eigh(S)
    return _cut(values, vectors, _rtol(rtol))[:2]


def _cut(values, vectors, rtol, ref=None):
    """Split resolved eigenpairs at ``rtol·ref`` (default: the largest) into kept and dropped."""
    ref = (values[0] if values.size else 0.0) if ref is None else ref
    keep = values > rtol * ref if ref > 0 else np.zeros(values.shape, bool)
    return values[keep].copy(), vectors[:, keep].copy(), values[~keep].copy(), vectors[:, ~keep].copy()


def vae_spectrum(moments, rtol=None):
    """θ spectrum of the (MH)VAE.

    Returns
    -------
    theta : ndarray of shape (r,)
        ``θ_i = √φ_i`` for the eigenvalues ``φ_i`` of ``E[xxᵀ]`` in its range, descending.
    P : ndarray of shape (dx, r)
        Eigenvectors (``P_A`` restricted to the range).

    Notes
    -----
    θ are the singular values of ``Z = E[x x̃ᵀ] = P_A Φ^{1/2}``. The range is
    ``φ > rtol·φ_max`` (``_config.RANK_RTOL``); each kept θ is computed to the relative accuracy of
    the column-equilibrated moments (:func:`resolved_eigh`), so data whose columns differ in
    scale by 1e12 gets its small θ right (with a small enough ``rtol``; the default drops them
    and :func:`linvae.fit` warns when that matters).
    """
    values, vectors = _resolved(moments, ("xx",), moments.xx)
    phi, P, _, _ = _cut(values, vectors, _rtol(rtol))
    return np.sqrt(phi), P


def _cvae_parts(moments, rtol):
    """E, U₂*, the x-range and the dropped shares of the CVAE, in exactly equilibrated coordinates.

    With power-of-two scales ``Dx``, ``Dy`` (``x̃ = Dx⁻¹x``, ``ỹ = Dy⁻¹y``), the residual moment
    ``E = Dy (E[ỹỹᵀ] − E[ỹx̃ᵀ]E[x̃x̃ᵀ]⁺E[x̃ỹᵀ]) Dy``: the Schur complement is invariant under any
    invertible rescaling of x's columns, and so is its computation here (up to rounding), because
    the range of x is cut in the equilibrated frame.
    """
    key = ("cvae-parts", rtol)
    if key in moments._cache:
        return moments._cache[key]
    eps = np.finfo(np.float64).eps
    Dx, Dy = _pow2_scales(np.diag(moments.xx).copy()), _pow2_scales(np.diag(moments.yy).copy())
    Axx = _symmetrize(moments.xx / Dx[:, None] / Dx[None, :])
    Axy = moments.xy / Dx[:, None] / Dy[None, :]
    Ayy = _symmetrize(moments.yy / Dy[:, None] / Dy[None, :])
    mu, V = np.linalg.eigh(Axx)
    mu, V = mu[::-1], V[:, ::-1]
    top = mu[0] if mu.size else 0.0
    floor = _config.ROUNDOFF_FACTOR * moments.dx * eps * top
    keep = mu > max(rtol * top, floor) if top > 0 else np.zeros(mu.shape, bool)
    drop = (mu > floor) & ~keep if top > 0 else keep
    B = (V[:, keep].T @ Axy) / np.sqrt(mu[keep])[:, None]
    Es = _symmetrize(Ayy - B.T @ B)
    E = Es * Dy[:, None] * Dy[None, :]
    U2 = Dy[:, None] * (((B / np.sqrt(mu[keep])[:, None]).T) @ V[:, keep].T) / Dx[None, :]
    share = 0.0
    if np.any(drop):
        Bd = (V[:, drop].T @ Axy) / np.sqrt(mu[drop])[:, None]
        share = float(np.linalg.norm(Bd * Dy[None, :], 2) ** 2)
    values, vectors = resolved_eigh(E, floor_ref=np.trace(Ayy), scales=Dy)
    theta, Q, e_dropped, _ = _cut(values, vectors, rtol, ref=float(np.trace(moments.yy)))
    parts = dict(E=E, U2=U2, theta=theta, Q=Q, share=share, e_drop=float(e_dropped[0]) if e_dropped.size else 0.0,
                 x_keep=(V[:, keep], mu[keep], Dx))
    moments._cache[key] = parts
    return parts


def cvae_x_range(moments, rtol=None):
    """Eigenpairs ``(φ_x, P_x)`` of ``E[xxᵀ]`` on the range of x that the CVAE uses (see :func:`cvae_residual`)."""
    parts = _cvae_parts(moments, _rtol(rtol))
    if "x_range" not in parts:
        V, mu, Dx = parts["x_keep"]
        if mu.size == 0:
            parts["x_range"] = (np.zeros(0), np.zeros((moments.dx, 0)))
        else:
            sigma, P = _jacobi_singular((V * np.sqrt(mu)) * Dx[:, None])
            parts["x_range"] = (sigma ** 2, sign_flip(P))
    phi, P = parts["x_range"]
    return phi.copy(), P.copy()


def cvae_residual(moments, rtol=None):
    """The CVAE key matrix ``E`` and the regression of y on x.

    Returns
    -------
    E : ndarray of shape (dy, dy)
        ``E[yyᵀ] − E[yxᵀ] E[xxᵀ]⁺ E[xyᵀ]``, the second moment of the least-squares residual
        ``r = y − U₂* x``.
    U2 : ndarray of shape (dy, dx)
        ``U₂* = E[yxᵀ] E[xxᵀ]⁺`` (the decoder's x-path at the optimum, Thm 2).
    theta : ndarray of shape (r,)
        Eigenvalues of ``E`` above ``rtol·tr E[yyᵀ]``, descending (variance-like θ of Thm 2).
    Q : ndarray of shape (dy, r)
        Their eigenvectors.

    Notes
    -----
    Computed in exactly (power-of-two) equilibrated coordinates through the whitened
    cross-moment ``B = M^{-1/2} Vᵀ E[x̃ỹᵀ]`` in the range of the equilibrated ``E[x̃x̃ᵀ] = V M Vᵀ``
    (``E = Dy(E[ỹỹᵀ] − BᵀB)Dy``), never an explicit inverse; directions where x has no energy
    contribute nothing to the regression (minimum-norm solution). Thm 2's optimum is invariant
    under invertible rescaling of x, and so is this computation: the count of collapsed dims does
    not change when a column of x is multiplied by 1e12 (``tests/test_inputs.py``).
    """
    if not moments.has_y:
        raise ValueError("the CVAE needs Y: these moments were computed without Y")
    p = _cvae_parts(moments, _rtol(rtol))
    return p["E"].copy(), p["U2"].copy(), p["theta"].copy(), p["Q"].copy()


def range_eigh_scaled(S, rtol=None, scale=None):
    """Like :func:`range_eigh` but relative to an external ``scale`` (e.g. ``tr E[yyᵀ]``).

    Used for matrices that are differences of moments (``E``), whose own largest eigenvalue
    may be pure round-off (``x = y`` gives ``E = 0`` up to rounding).
    """
    values, vectors = resolved_eigh(S)
    return _cut(values, vectors, _rtol(rtol), ref=scale)[:2]


def moments_from_dask(X, Y=None, center=False):
    """:class:`linvae.Moments` of a (possibly out-of-core) ``dask.array``, by a tree reduction.

    Each block of rows becomes a :class:`MomentAccumulator` (mean and centred
    scatter); Dask merges them pairwise up a tree with the Chan–Golub–LeVeque update, so no task
    ever holds more than one block and two d×d matrices, and the result equals the in-memory
    moments to rounding.

    Parameters
    ----------
    X : dask.array.Array (n_samples, d_x)
    Y : dask.array.Array (n_samples, d_y), optional
        Rechunked to the row chunks of ``X``.
    center : bool

    Returns
    -------
    Moments
    """
    dask = import_optional("dask")
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D of shape (n_samples, n_features), got shape {X.shape}")
    X = X.rechunk({1: X.shape[1]})
    blocks_x = list(X.to_delayed().ravel())
    blocks_y = [None] * len(blocks_x)
    if Y is not None:
        if Y.ndim != 2 or X.shape[0] != Y.shape[0]:
            raise ValueError(f"Y must be 2-D with as many rows as X ({X.shape[0]}), got shape {Y.shape}")
        blocks_y = list(Y.rechunk({0: X.chunks[0], 1: Y.shape[1]}).to_delayed().ravel())
    parts = [dask.delayed(_block)(bx, by) for bx, by, size in zip(blocks_x, blocks_y, X.chunks[0]) if size]
    if not parts:
        raise ValueError(f"X is empty (shape {X.shape}); at least one sample is required")
    while len(parts) > 1:
        parts = [dask.delayed(_merge)(parts[i], parts[i + 1]) if i + 1 < len(parts) else parts[i]
                 for i in range(0, len(parts), 2)]
    return dask.compute(parts[0])[0].finalize(center=center)


def _block(x, y):
    return MomentAccumulator().add(x, y)


def _merge(a, b):
    return a.merge(b)
