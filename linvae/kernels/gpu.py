"""CuPy twins of the moment-space training kernels (``backend="cupy"``).

Same contract as :func:`linvae.kernels.cpu.train_vae` / :func:`~linvae.kernels.cpu.train_mhvae`
(:mod:`linvae.kernels.contract`), with the problem's and the state's arrays on the device.
The B configurations are trained together: the losses and gradients are batched
``cupy.matmul`` products on (B, ·, ·) stacks (the array-generic code of
:mod:`linvae.objectives`, through :func:`linvae.kernels.array.train_batched`), and the Adam
update of all parameters of all configurations is one fused ``cupy.ElementwiseKernel`` launch
per step — no Python loop over configurations.

Without CuPy or without a GPU every entry point raises
:class:`~linvae.MissingDependencyError` with ``pip install "linvae[cuda12]"``; the rest of the
package keeps working.  On a machine without a GPU the same array code runs on NumPy arrays
(``backend="numpy"``), which is what the CPU test suite checks.
"""
from .._backend import cupy_available, get_cupy
from .array import train_batched

__all__ = ["ADAM_SOURCE", "GD_SOURCE", "cupy_available", "get_cupy", "train_vae", "train_mhvae", "update_cupy"]

#: Body of the fused Adam update (``T`` is float or double). Inputs: gradient ``g``, per-config
#: step ``lr`` and bias corrections ``c1 = 1 − β₁ᵗ``, ``c2 = 1 − β₂ᵗ``; read-write: ``p, m, v``.
ADAM_SOURCE = r"""
T mm = b1 * m + ((T)1 - b1) * g;
T vv = b2 * v + ((T)1 - b2) * g * g;
m = mm;
v = vv;
p = p - lr * (mm / c1) / (sqrt(vv / c2) + eps);
"""

#: Body of the fused gradient-descent update with heavy-ball momentum ``mu`` (velocity ``m``).
GD_SOURCE = r"""
T mm = mu * m + g;
m = mm;
p = p - lr * mm;
"""

ADAM_PARAMS = ("T g, T lr, T b1, T b2, T c1, T c2, T eps", "T p, T m, T v")
GD_PARAMS = ("T g, T lr, T mu", "T p, T m")

_KERNELS = {}


def _kernel(name):
    if name not in _KERNELS:
        cp = get_cupy()
        if name == "adam":
            _KERNELS[name] = cp.ElementwiseKernel(*ADAM_PARAMS, ADAM_SOURCE, "linvae_adam_update")
        else:
            _KERNELS[name] = cp.ElementwiseKernel(*GD_PARAMS, GD_SOURCE, "linvae_gd_update")
    return _KERNELS[name]


def update_cupy(params, g, m, v, lr_t, t, adam, b1, b2, eps, xp=None, momentum=0.0):
    """Fused optimizer update of a (B', P) block on the GPU; returns ``(params, m, v)``."""
    lr_t = lr_t.astype(params.dtype, copy=False)          # every operand of the kernel has type T
    g = g.astype(params.dtype, copy=False)
    if not adam:
        _kernel("gd")(g, lr_t, params.dtype.type(momentum), params, m)
        return params, m, v
    dtype = params.dtype.type
    t = t.astype(params.dtype, copy=False)
    _kernel("adam")(g, lr_t, dtype(b1), dtype(b2), 1 - dtype(b1) ** t, 1 - dtype(b2) ** t, dtype(eps), params, m, v)
    return params, m, v


update_cupy.in_place = True        # writes params, m, v: train_batched hands it copies


def train_vae(problem, state, options, n_steps, *, parallel=None):
    """GPU twin of :func:`linvae.kernels.cpu.train_vae` (``parallel`` is ignored)."""
    train_batched("vae", problem, state, options, n_steps, xp=get_cupy(), update=update_cupy)


def train_mhvae(problem, state, options, n_steps, *, parallel=None):
    """GPU twin of :func:`linvae.kernels.cpu.train_mhvae` (``parallel`` is ignored)."""
    train_batched("mhvae", problem, state, options, n_steps, xp=get_cupy(), update=update_cupy)
