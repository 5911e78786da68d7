"""Every input check of the public API and its error message.

Kernels and theory functions never validate; the public wrappers call these helpers first.
Messages name the argument, the offending value and what is allowed.
"""
import numbers
import operator
import os

import numpy as np

__all__ = [
    "check_data",
    "check_pair",
    "check_positive",
    "check_positive_grid",
    "check_latent_dim",
    "check_choice",
    "check_sigma",
    "check_nonneg",
    "check_int",
    "check_rtol",
    "check_seed",
    "check_scale",
    "check_sparse",
    "check_memory",
    "is_sparse",
]


def _short(value):
    """A short printable version of ``value`` for error messages."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def check_data(X, name="X", copy=True):
    """Validate a data matrix and return it as a C-contiguous float64 array.

    Lists, integer, boolean and float32 inputs are converted; complex, object and string
    dtypes, non-2-D arrays, empty arrays and non-finite values are rejected.

    Parameters
    ----------
    X : array_like of shape (n_samples, n_features)
    name : str
        Argument name used in error messages.
    copy : bool, default True
        Always return a new array. With False, a C-contiguous float64 input is returned as is
        (read-only use: the moment passes over large data avoid a second copy).

    Returns
    -------
    ndarray of float64, shape (n_samples, n_features)
    """
    if X is None:
        raise TypeError(f"{name} must be an array of shape (n_samples, n_features), got None")
    if np.ma.isMaskedArray(X):
        n_masked = int(np.count_nonzero(np.ma.getmaskarray(X)))
        if n_masked:
            raise ValueError(
                f"{name} is a masked array with {n_masked} masked value(s); the linear models have no "
                f"missing-data treatment, so masked entries would be fitted as data: drop those rows "
                f"({name}[~{name}.mask.any(axis=1)]) or fill them ({name}.filled(value)) first")
        X = np.ma.getdata(X)
    if is_sparse(X):
        raise TypeError(
            f"{name} is a scipy.sparse matrix ({type(X).__name__}, shape {X.shape}); fit, sweep and "
            f"predict_collapse accept sparse data (the moments {name}ᵀ{name}/N are computed without densifying), "
            f"but this step needs dense rows: pass {name}.toarray()")
    arr = _pandas_values(X, name) if _is_pandas(X) else np.asarray(X)
    if arr.dtype.kind == "c":
        raise TypeError(
            f"{name} has complex dtype {arr.dtype}; only real data is allowed "
            "(pass X.real if the imaginary part is zero)"
        )
    if arr.dtype.kind not in "biuf":
        raise TypeError(
            f"{name} has dtype {arr.dtype!s}; a real numeric dtype (float, int or bool) is required"
        )
    if arr.ndim != 2:
        hint = " (use X.reshape(-1, 1) for one feature)" if arr.ndim == 1 else ""
        raise ValueError(
            f"{name} must be 2-D of shape (n_samples, n_features), got {arr.ndim}-D array "
            f"of shape {arr.shape}{hint}"
        )
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"{name} is empty (shape {arr.shape}); at least one sample and one feature are required")
    if copy:
        out = np.array(arr, dtype=np.float64, order="C", copy=True)
    else:
        out = np.ascontiguousarray(arr, dtype=np.float64)
    # min/max propagate NaN and show ±inf: two allocation-free passes instead of an isfinite mask
    if not (np.isfinite(out.min()) and np.isfinite(out.max())):
        bad = np.argwhere(~np.isfinite(out))[0]
        raise ValueError(
            f"{name} contains NaN or inf (first at row {bad[0]}, column {bad[1]}: "
            f"{out[bad[0], bad[1]]}); all values must be finite"
        )
    return out


def is_sparse(X):
    """True for a scipy.sparse matrix or array (checked without importing scipy.sparse)."""
    return type(X).__module__.startswith("scipy.sparse") and hasattr(X, "tocsr")


def check_sparse(X, name="X"):
    """Validate a scipy.sparse data matrix; return it as CSR float64 (its stored values checked).

    The same rules as :func:`check_data`: real numeric dtype, 2-D, non-empty, finite values.
    """
    if X.dtype.kind == "c":
        raise TypeError(f"{name} is a sparse matrix of complex dtype {X.dtype}; only real data is allowed")
    if X.dtype.kind not in "biuf":
        raise TypeError(f"{name} is a sparse matrix of dtype {X.dtype!s}; a real numeric dtype (float, int or "
                        "bool) is required")
    if len(X.shape) != 2 or X.shape[0] < 1 or X.shape[1] < 1:
        raise ValueError(f"{name} is a sparse matrix of shape {X.shape}; a non-empty (n_samples, n_features) "
                         "matrix is required")
    X = X.tocsr().astype(np.float64)
    if X.nnz and not (np.isfinite(X.data.min()) and np.isfinite(X.data.max())):
        i = int(np.flatnonzero(~np.isfinite(X.data))[0])
        row = int(np.searchsorted(X.indptr, i, side="right") - 1)
        raise ValueError(f"{name} contains NaN or inf (first at row {row}, column {int(X.indices[i])}: "
                         f"{X.data[i]}); all values must be finite")
    return X


def _is_pandas(X):
    return type(X).__module__.split(".")[0] == "pandas" and hasattr(X, "to_numpy") and hasattr(X, "iloc")


def _pandas_values(X, name):
    """The values of a pandas DataFrame or Series as a float array when every column is numeric;
    a missing value (``NA``/``NaN`` of a nullable dtype) or a categorical column is named."""
    frame = X.to_frame() if not hasattr(X, "columns") else X
    for position, (label, dtype) in enumerate(frame.dtypes.items()):
        column = frame.iloc[:, position]
        where = f"{name} column {label!r}" if hasattr(X, "columns") else f"{name} (Series {label!r})"
        if str(dtype) == "category":
            raise TypeError(
                f"{where} is categorical (categories {_short(list(column.cat.categories))}); the models need "
                f"numbers: encode it first (pandas.get_dummies({name}) for one column per category, or "
                f"{name}[{label!r}].cat.codes for the category codes)")
        missing = column.isna().to_numpy()
        if getattr(dtype, "na_value", None) is not None and missing.any():
            row = int(np.flatnonzero(missing)[0])
            raise ValueError(
                f"{where} has {int(missing.sum())} missing value(s) ({column.dtype} NA; the first at row "
                f"{row}, index {frame.index[row]!r}); the linear models have no missing-data treatment: drop "
                f"those rows ({name}.dropna()) or fill them ({name}.fillna(value)) first")
        kind = dtype.kind if isinstance(dtype, np.dtype) else getattr(dtype, "kind", "O")
        if kind not in "biufc":
            sample = next((v for v in column if not isinstance(v, (numbers.Real, np.bool_))), column.iloc[0])
            raise TypeError(f"{where} has dtype {dtype} (values such as {_short(sample)}); a real numeric dtype "
                            "(float, int or bool) is required")
    values = np.asarray(frame.to_numpy(dtype=np.complex128 if any(
        getattr(dt, "kind", "") == "c" for dt in frame.dtypes) else np.float64))
    return values if hasattr(X, "columns") else values[:, 0]


def _available_memory():
    """Bytes of memory available now (Linux ``MemAvailable``, else physical memory), or None."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _bytes(n):
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.3g} {unit}"
        n /= 1024


def check_memory(nbytes, what, hint):
    """Refuse work that needs more memory than is available, before allocating any of it.

    Raises :class:`MemoryError` naming ``what``, the estimated need and what is available,
    followed by ``hint`` (how to make the work smaller).
    """
    available = _available_memory()
    if available is not None and nbytes > available:
        raise MemoryError(f"{what} needs about {_bytes(nbytes)} of memory, more than the {_bytes(available)} "
                          f"available; {hint}")


def check_pair(X, Y):
    """Validate a condition/target pair with the same number of samples."""
    X = check_data(X, "X")
    Y = check_data(Y, "Y")
    if X.shape[0] != Y.shape[0]:
        raise ValueError(
            f"X and Y must have the same number of samples, got X with {X.shape[0]} and "
            f"Y with {Y.shape[0]} rows"
        )
    return X, Y


def check_positive(value, name):
    """Validate a finite, strictly positive real scalar and return it as float."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, np.number)):
        arr = np.asarray(value) if not isinstance(value, str) else None
        if arr is not None and arr.ndim == 0 and arr.dtype.kind in "iuf":
            value = arr.item()
        else:
            raise TypeError(f"{name} must be a positive real number, got {_short(value)}")
    value = float(value)
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return value


def check_positive_grid(value, name):
    """Validate a scalar or 1-D array of finite positive values; returns a 1-D float64 array."""
    if isinstance(value, str):
        raise TypeError(f"{name} must be a positive number or array of positive numbers, got {_short(value)}")
    arr = np.asarray(value)
    if arr.dtype.kind not in "iuf" or arr.ndim > 1:
        raise TypeError(
            f"{name} must be a positive number or a 1-D array of positive numbers, got {_short(value)}"
        )
    arr = np.atleast_1d(arr.astype(np.float64))
    if arr.size == 0:
        raise ValueError(f"{name} is empty; give at least one value")
    bad = ~np.isfinite(arr) | (arr <= 0)
    if np.any(bad):
        raise ValueError(f"{name} must contain only finite values > 0, got {float(arr[bad][0])!r} in "
                         f"{_short(arr.tolist())}")
    return arr


def check_latent_dim(value, name="latent_dim"):
    """Validate an integer latent size >= 1."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an integer >= 1, got {value!r}")
    try:
        ivalue = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer >= 1, got {_short(value)}") from None
    if ivalue < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {ivalue}")
    return int(ivalue)


def check_choice(value, name, allowed):
    """Validate that ``value`` is one of ``allowed`` (strings)."""
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name} must be one of {sorted(allowed)}, got {_short(value)}")
    return value


def check_sigma(value, name, size, allow_learnable=True):
    """Validate an encoder standard deviation specification.

    Parameters
    ----------
    value : "learnable", float or array_like
        ``"learnable"`` (when allowed), a positive scalar (isotropic) or ``size`` positive values.
    name : str
    size : int
        Latent size the array must match.
    allow_learnable : bool

    Returns
    -------
    None or ndarray of shape (size,)
        ``None`` means learnable.
    """
    if isinstance(value, str):
        if allow_learnable and value == "learnable":
            return None
        allowed = '"learnable" or ' if allow_learnable else ""
        raise ValueError(f"{name} must be {allowed}a positive number or array of {size} positive numbers, got {value!r}")
    arr = np.asarray(value)
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be a positive number or array of positive numbers, got {_short(value)}")
    arr = arr.astype(np.float64)
    if arr.ndim == 0:
        arr = np.full(size, float(arr))
    elif arr.ndim != 1 or arr.shape[0] != size:
        raise ValueError(f"{name} must be a scalar or have shape ({size},) (one value per latent dim), got shape {arr.shape}")
    bad = ~np.isfinite(arr) | (arr <= 0)
    if np.any(bad):
        raise ValueError(f"{name} must contain only finite values > 0 (σ is a standard deviation), got "
                         f"{float(arr[bad][0])!r}")
    for v in arr[(arr < SCALE_MIN) | (arr > SCALE_MAX)][:1]:    # σ² enters the losses and the KL
        check_scale(float(v), name)
    return arr


def check_nonneg(value, name):
    """Validate a finite real scalar >= 0 and return it as float."""
    if isinstance(value, (bool, np.bool_, str)) or np.ndim(value) != 0:
        raise TypeError(f"{name} must be a number >= 0, got {_short(value)}")
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number >= 0, got {_short(value)}") from None
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return value


def check_bool(value, name):
    """Validate a flag: ``bool`` or ``numpy.bool_`` only (a string such as ``"no"`` is truthy, so it is refused)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {_short(value)}")
    return bool(value)


def check_int(value, name, minimum=1):
    """Validate an integer >= ``minimum``."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {value!r}")
    try:
        ivalue = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer >= {minimum}, got {_short(value)}") from None
    if ivalue < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {ivalue}")
    return int(ivalue)


def check_rtol(value, name="rtol"):
    """Validate a relative rank tolerance: a finite real number in [0, 1)."""
    if isinstance(value, (bool, np.bool_, str)) or np.ndim(value) != 0:
        raise TypeError(f"{name} must be a number in [0, 1) (a relative rank tolerance), got {_short(value)}")
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number in [0, 1) (a relative rank tolerance), got {_short(value)}") from None
    if not (np.isfinite(value) and 0.0 <= value < 1.0):
        raise ValueError(f"{name} must be a finite number in [0, 1) (eigenvalues below rtol·max are dropped), "
                         f"got {value!r}")
    return value


#: largest seed: seeds are stored as int64
SEED_MAX = 2**63 - 1


def check_seed(value, name="seed", allow_array=False):
    """Validate a seed: an integer in [0, 2**63 - 1] (or, with ``allow_array``, a 1-D array of them).

    Returns an int, or a 1-D int64 array when ``allow_array``.
    """
    what = "a non-negative integer" + (" or a 1-D sequence of them" if allow_array else "")
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be {what} (at most 2**63 - 1), got {value!r}")
    if np.ndim(value) == 0:
        try:
            ivalue = operator.index(value)
        except TypeError:
            raise TypeError(f"{name} must be {what} (at most 2**63 - 1), got {_short(value)}") from None
        if not 0 <= ivalue <= SEED_MAX:
            raise ValueError(f"{name} must be an integer in [0, 2**63 - 1], got {ivalue}")
        return np.array([ivalue], dtype=np.int64) if allow_array else int(ivalue)
    if not allow_array:
        raise TypeError(f"{name} must be a single non-negative integer, got {_short(value)}; fit trains one "
                        "configuration (use linvae.sweep(..., seed=[...]) for several seeds)")
    items = list(value) if np.ndim(value) == 1 else None
    if items is None or not items:
        raise ValueError(f"{name} must be {what}, got {_short(value)}")
    return np.array([check_seed(v, name) for v in items], dtype=np.int64)


#: positive scales whose square is a normal float64 (η_enc, η_dec, σ enter the losses squared)
SCALE_MIN = float(np.sqrt(np.finfo(np.float64).tiny))
SCALE_MAX = float(np.sqrt(np.finfo(np.float64).max))


def check_scale(value, name):
    """A positive real whose square must be a normal float64 (in about [1.5e-154, 1.3e154])."""
    value = check_positive(value, name)
    if not SCALE_MIN <= value <= SCALE_MAX:
        raise ValueError(f"{name} = {value!r} is out of range: it enters the loss squared, and {name}² "
                         f"{'underflows' if value < SCALE_MIN else 'overflows'} float64; use a value in "
                         f"[{SCALE_MIN:.2g}, {SCALE_MAX:.2g}] (rescale the data with it if needed)")
    return value
