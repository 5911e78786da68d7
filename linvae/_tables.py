"""Tidy views of collapse tables: pandas DataFrames (long and wide) and JSON-safe dicts."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._deps import import_optional

#: per-(configuration, latent dim) columns of the long form
PER_DIM = ("kl", "sigma", "collapsed")


def jsonable(obj: Any) -> Any:
    """A copy of ``obj`` made of JSON types: arrays and tuples become lists, NumPy scalars Python ones.

    Non-finite floats become ``None`` (JSON has no NaN or infinity).
    """
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    from ._backend import to_host

    obj = to_host(obj)
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return str(obj)


def long_frame(model, theorem, columns, collapsed, kl, sigma):
    """One row per configuration × latent dim: the configuration's columns, dim, kl, sigma, collapsed."""
    pd = import_optional("pandas")
    n, d = collapsed.shape
    data = {"config": np.repeat(np.arange(n), d)}
    for name, col in columns.items():
        data[name] = np.repeat(np.asarray(col), d)
    data["dim"] = np.tile(np.arange(d), n)
    data["kl"] = np.asarray(kl, dtype=float).ravel()
    data["sigma"] = (np.full(n * d, np.nan) if sigma is None
                     else np.broadcast_to(np.asarray(sigma, dtype=float), (n, d)).ravel())
    data["collapsed"] = np.asarray(collapsed, dtype=bool).ravel()
    df = pd.DataFrame(data)
    df.attrs.update(model=model, theorem=theorem)
    return df


def wide_frame(model, theorem, columns, collapsed, kl, sigma):
    """One row per configuration: its columns, then ``kl_i``, ``sigma_i`` and ``collapsed_i`` per dim."""
    pd = import_optional("pandas")
    n, d = collapsed.shape
    data = {name: np.asarray(col) for name, col in columns.items()}
    sig = np.full((n, d), np.nan) if sigma is None else np.broadcast_to(np.asarray(sigma, dtype=float), (n, d))
    for name, arr in (("kl", np.asarray(kl, dtype=float)), ("sigma", sig),
                      ("collapsed", np.asarray(collapsed, dtype=bool))):
        for i in range(d):
            data[f"{name}_{i}"] = arr[:, i]
    df = pd.DataFrame(data)
    df.index.name = "config"
    df.attrs.update(model=model, theorem=theorem)
    return df


def from_long_frame(df):
    """Inverse of :func:`long_frame`: (model, theorem, columns, collapsed, kl, sigma)."""
    missing = [c for c in ("config", "dim", *PER_DIM) if c not in df.columns]
    if missing:
        raise ValueError(f"df is not a long collapse table: columns {missing} are missing "
                         "(expected the output of CollapseTable.to_frame())")
    df = df.sort_values(["config", "dim"], kind="stable")
    configs = df["config"].to_numpy()
    n = len(np.unique(configs))
    d = len(df) // max(n, 1)
    if n * d != len(df):
        raise ValueError(f"df has {len(df)} rows, not a full grid of {n} configurations × latent dims")
    first = df.iloc[::d]
    names = [c for c in df.columns if c not in ("config", "dim", *PER_DIM)]
    columns = {c: first[c].to_numpy().copy() for c in names}
    collapsed = df["collapsed"].to_numpy(dtype=bool).reshape(n, d)
    kl = df["kl"].to_numpy(dtype=float).reshape(n, d)
    sigma = df["sigma"].to_numpy(dtype=float).reshape(n, d)
    if np.all(np.isnan(sigma)):
        sigma = None
    return df.attrs.get("model", "vae"), df.attrs.get("theorem", ""), columns, collapsed, kl, sigma
