"""CuPy twins of the moment-space training kernels (``backend="cupy"``).

Same signatures as :func:`linvae.kernels.cpu.run_cvae` / :func:`~linvae.kernels.cpu.run_mhvae`.
The B configurations are trained together: the losses and gradients are batched
``cupy.matmul`` products on (B, ·, ·) stacks (the array-generic code of
:mod:`linvae.objectives`, through :func:`linvae.kernels.reference.run_batched`), and the Adam
update of all parameters of all configurations is one fused ``cupy.ElementwiseKernel`` launch
per step — no Python loop over configurations.

Without CuPy or without a GPU every entry point raises
:class:`~linvae.MissingDependencyError` with ``pip install "linvae[cuda12]"``; the rest of the
package keeps working.  On a machine without a GPU the same array code runs on NumPy arrays
(``backend="numpy"``), which is what the CPU test suite checks.
"""
from .._deps import MissingDependencyError, import_optional
from .reference import run_batched

__all__ = ["ADAM_SOURCE", "GD_SOURCE", "cupy_available", "get_cupy", "run_cvae", "run_mhvae", "update_cupy"]

#: Body of the fused Adam update (``T`` is float or double). Inputs: gradient ``g``, per-config
#: step ``lr`` and bias corrections ``c1 = 1 − β₁ᵗ``, ``c2 = 1 − β₂ᵗ``; read-write: ``p, m, v``.
ADAM_SOURCE = r"""
T mm = b1 * m + ((T)1 - b1) * g;
T vv = b2 * v + ((T)1 - b2) * g * g;
m = mm;
v = vv;
p = p - lr * (mm / c1) / (sqrt(vv / c2) + eps);
"""

#: Body of the fused gradient-descent update.
GD_SOURCE = r"""
p = p - lr * g;
"""

ADAM_PARAMS = ("T g, T lr, T b1, T b2, T c1, T c2, T eps", "T p, T m, T v")
GD_PARAMS = ("T g, T lr", "T p")

_KERNELS = {}


def get_cupy():
    """Import CuPy and check that a GPU is usable, or raise with the install line."""
    cp = import_optional("cupy")
    try:
        n = cp.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDA driver missing or broken
        raise MissingDependencyError(
            f"CuPy is installed but no usable NVIDIA GPU was found ({exc}); backend='cupy' needs a "
            'CUDA 12 GPU and pip install "linvae[cuda12]"') from exc
    if n < 1:
        raise MissingDependencyError(
            'no NVIDIA GPU found; backend="cupy" needs a CUDA 12 GPU and pip install "linvae[cuda12]"')
    return cp


def cupy_available():
    """True when CuPy imports and sees at least one GPU."""
    try:
        get_cupy()
    except MissingDependencyError:
        return False
    return True


def _kernel(name):
    if name not in _KERNELS:
        cp = get_cupy()
        if name == "adam":
            _KERNELS[name] = cp.ElementwiseKernel(*ADAM_PARAMS, ADAM_SOURCE, "linvae_adam_update")
        else:
            _KERNELS[name] = cp.ElementwiseKernel(*GD_PARAMS, GD_SOURCE, "linvae_gd_update")
    return _KERNELS[name]


def update_cupy(theta, g, m, v, lr_t, t, adam, b1, b2, eps, xp=None):
    """Fused optimizer update of a (B', P) block on the GPU; returns ``(theta, m, v)``."""
    lr_t = lr_t.astype(theta.dtype, copy=False)          # every operand of the kernel has type T
    g = g.astype(theta.dtype, copy=False)
    if not adam:
        _kernel("gd")(g, lr_t, theta)
        return theta, m, v
    dtype = theta.dtype.type
    t = t.astype(theta.dtype, copy=False)
    _kernel("adam")(g, lr_t, dtype(b1), dtype(b2), 1 - dtype(b1) ** t, 1 - dtype(b2) ** t, dtype(eps), theta, m, v)
    return theta, m, v


def run_cvae(*args, **kwargs):
    """GPU twin of :func:`linvae.kernels.cpu.run_cvae` (all array arguments on the device)."""
    kwargs.pop("parallel", None)
    run_batched("cvae", *args, xp=get_cupy(), update=update_cupy, **kwargs)


def run_mhvae(*args, **kwargs):
    """GPU twin of :func:`linvae.kernels.cpu.run_mhvae` (all array arguments on the device)."""
    kwargs.pop("parallel", None)
    run_batched("mhvae", *args, xp=get_cupy(), update=update_cupy, **kwargs)
