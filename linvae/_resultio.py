"""Fit results as plain arrays + JSON metadata (the sweep checkpoints' format; no pickle).

:func:`to_arrays` splits a :class:`~linvae.VAEFit` / :class:`~linvae.CVAEFit` /
:class:`~linvae.MHVAEFit` into named NumPy arrays (numeric and boolean dtypes only, so
``numpy.load(allow_pickle=False)`` reads them back) and a JSON-safe description of the other
fields; :func:`from_arrays` rebuilds an equal result. The result class is looked up in a fixed
table by name, so reading never imports or calls anything a file names.
"""
import dataclasses

import numpy as np

__all__ = ["to_arrays", "from_arrays", "RESULT_TYPES"]


#: the result classes a checkpoint may hold (name -> class, filled on first use)
RESULT_TYPES = {}


def _types():
    if not RESULT_TYPES:
        from .theory.cvae import CVAEFit
        from .theory.mhvae import MHVAEFit
        from .theory.vae import VAEFit

        RESULT_TYPES.update(VAEFit=VAEFit, CVAEFit=CVAEFit, MHVAEFit=MHVAEFit)
    return RESULT_TYPES


def _array(value, what):
    arr = np.asarray(value)
    if arr.dtype.kind not in "biufc" or arr.dtype.hasobject:
        raise TypeError(f"cannot checkpoint {what}: arrays of dtype {arr.dtype} are not plain data")
    return np.array(arr, order="C")       # (ascontiguousarray would make a 0-d array 1-d)


def _encode(value, key, arrays, what):
    """The JSON description of ``value``; array payloads go to ``arrays[key]``."""
    if isinstance(value, np.generic):           # first: np.float64 is also a float, np.str_ a str
        arrays[key] = _array(value, what)
        return {"kind": "scalar"}
    if value is None or isinstance(value, (bool, str)):
        return {"kind": "json", "value": value}
    if isinstance(value, int):
        return {"kind": "int", "value": int(value)}
    if isinstance(value, float):                # inf and NaN survive as a float64 array
        arrays[key] = np.asarray(value, dtype=np.float64)
        return {"kind": "float"}
    if type(value).__name__ == "ndarray":       # NumPy, or CuPy (copied to the host)
        from .theory._common import to_host

        arrays[key] = _array(to_host(value), what)
        return {"kind": "array"}
    if isinstance(value, dict):                 # array names by position: any string key is safe
        if not all(isinstance(k, str) for k in value):
            raise TypeError(f"cannot checkpoint {what}: dict keys must be strings")
        return {"kind": "dict", "items": [[k, _encode(v, f"{key}/{i}", arrays, f"{what}[{k!r}]")]
                                          for i, (k, v) in enumerate(value.items())]}
    if isinstance(value, (list, tuple)):
        return {"kind": "list" if isinstance(value, list) else "tuple",
                "items": [_encode(v, f"{key}/{i}", arrays, f"{what}[{i}]") for i, v in enumerate(value)]}
    raise TypeError(f"cannot checkpoint {what}: values of type {type(value).__name__} are not plain data")


def _decode(desc, key, arrays):
    kind = desc["kind"]
    if kind == "json":
        value = desc["value"]
        if value is not None and not isinstance(value, (bool, str)):
            raise ValueError(f"{key}: a 'json' field holds {type(value).__name__}")
        return value
    if kind == "int":
        return int(desc["value"])
    if kind == "float":
        return float(arrays[key][()])
    if kind == "scalar":
        return arrays[key][()]
    if kind == "array":
        return np.array(arrays[key])
    if kind == "dict":
        return {k: _decode(v, f"{key}/{i}", arrays) for i, (k, v) in enumerate(desc["items"])}
    if kind in ("list", "tuple"):
        items = [_decode(v, f"{key}/{i}", arrays) for i, v in enumerate(desc["items"])]
        return items if kind == "list" else tuple(items)
    raise ValueError(f"{key}: unknown field kind {kind!r}")


def to_arrays(result, prefix=""):
    """Split a fit result into arrays and JSON metadata.

    Parameters
    ----------
    result : VAEFit, CVAEFit or MHVAEFit
    prefix : str
        Prepended to every array name (several results share one ``.npz``).

    Returns
    -------
    arrays : dict of str -> ndarray
        Numeric and boolean arrays only (``numpy.savez`` / ``numpy.load(allow_pickle=False)``).
    meta : dict
        JSON-safe: the class name and, per field, how to rebuild it.

    Raises
    ------
    TypeError
        For a result type or a field value that is not plain data.
    """
    types = _types()
    name = type(result).__name__
    if types.get(name) is not type(result):
        raise TypeError(f"cannot checkpoint a {name}; expected one of {sorted(types)}")
    arrays = {}
    fields = {f.name: _encode(getattr(result, f.name), f"{prefix}{f.name}", arrays, f"{name}.{f.name}")
              for f in dataclasses.fields(result)}
    return arrays, {"type": name, "fields": fields}


def from_arrays(arrays, meta, prefix=""):
    """Rebuild the fit result that :func:`to_arrays` split into ``arrays`` and ``meta``.

    Parameters
    ----------
    arrays : mapping of str -> ndarray
        E.g. an open ``numpy.load(..., allow_pickle=False)`` archive.
    meta : dict
    prefix : str

    Returns
    -------
    VAEFit, CVAEFit or MHVAEFit

    Raises
    ------
    ValueError
        When ``meta`` names an unknown type or does not describe that type's fields.
    """
    types = _types()
    cls = types.get(meta.get("type")) if isinstance(meta, dict) else None
    if cls is None:
        raise ValueError(f"unknown result type {meta.get('type') if isinstance(meta, dict) else meta!r}")
    names = {f.name for f in dataclasses.fields(cls)}
    fields = meta.get("fields")
    if not isinstance(fields, dict) or set(fields) != names:
        raise ValueError(f"the metadata does not describe the fields of {cls.__name__}")
    try:
        values = {k: _decode(v, f"{prefix}{k}", arrays) for k, v in fields.items()}
    except KeyError as exc:
        raise ValueError(f"array {exc.args[0]!r} is missing") from None
    return cls(**values)
