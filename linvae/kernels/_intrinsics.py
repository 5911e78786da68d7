"""Two low-level building blocks of the Numba kernels, written as intrinsics.

An intrinsic's few LLVM instructions are emitted straight into the calling kernel, so it adds
nothing to compile but itself. The NumPy spellings they replace each bring more to a cold
compile (``benchmarks/scripts/compile_time.py``):

``gemm(a, b, out)``
    ``out = a @ b``, like ``np.dot(a, b, out)``, for 2-D float32 or float64 arrays that are
    C-contiguous or transposes of C-contiguous arrays (F layout), into a C-contiguous ``out``.
    It is what ``np.dot`` ends in — the same ``numba_xxgemm`` helper of Numba, which calls
    SciPy's BLAS — without what ``np.dot`` compiles around it: ``np.dot`` is an overload whose
    implementation is a separate function compiled once per argument layout (three layouts in
    these kernels, about 0.1 s of a cold compile each) with its own argument checks. The caller
    is responsible for the shapes (``a`` m×k, ``b`` k×n, ``out`` m×n) and for ``out`` not
    overlapping ``a`` or ``b`` (NumPy would copy; BLAS would read what it already wrote; the
    kernels' outputs are always their own scratch or gradient blocks). Empty products follow
    ``np.dot``: nothing to do when m or n is 0, ``out`` zero-filled when k is 0 (BLAS rejects
    zero leading dimensions).
``matrix(flat, rows, cols)``
    The C-contiguous rows×cols view of a contiguous vector of exactly rows·cols elements, which
    is ``flat.reshape((rows, cols))`` without the general reshape's code at every call site
    (the kernels take about forty such views of their packed parameters and scratch space).
    A length that is not rows·cols raises ``ValueError``.

Both use internals of Numba (``numba.np.linalg.call_xxgemm``, ``numba.np.arrayobj``). A Numba
without them gets the plain ``np.dot`` / ``reshape`` versions (:func:`gemm_numpy`,
:func:`matrix_numpy`): the same results, a slower first compile. The kernels' products and views
are checked against NumPy in ``tests/test_kernels.py``.
"""
import logging

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.core.imputils import impl_ret_borrowed
from numba.extending import intrinsic

try:
    from numba.np.arrayobj import make_array, populate_array
    from numba.np.linalg import call_xxgemm, ensure_blas
except ImportError:                                   # pragma: no cover - depends on the Numba release
    NUMBA_INTERNALS = False
    logging.getLogger(__name__).info("Numba lacks call_xxgemm/populate_array: kernels use np.dot and reshape")
else:
    NUMBA_INTERNALS = True

__all__ = ["gemm", "matrix", "NUMBA_INTERNALS"]


@njit(inline="always")
def gemm_numpy(a, b, out):
    """:func:`gemm` spelled with ``np.dot`` (the fallback)."""
    np.dot(a, b, out)


@njit(inline="always")
def matrix_numpy(flat, start, rows, cols):
    """:func:`matrix` spelled with a slice and ``reshape`` (the fallback)."""
    if start < 0 or rows < 0 or cols < 0 or start + rows * cols > flat.shape[0]:
        raise ValueError("matrix: the view does not fit in the vector")
    return flat[start:start + rows * cols].reshape((rows, cols))


def _check(name, ty, ndim, layouts):
    if not (isinstance(ty, types.Array) and ty.ndim == ndim and ty.layout in layouts
            and ty.dtype in (types.float32, types.float64)):
        raise TypingError(f"{name} must be a {ndim}-D float32/float64 array of layout "
                          f"{' or '.join(layouts)}, got {ty}")


@intrinsic
def gemm(typingctx, a, b, out):
    """``out = a @ b`` (see the module docstring)."""
    _check("gemm: a", a, 2, "CF")
    _check("gemm: b", b, 2, "CF")
    _check("gemm: out", out, 2, "C")
    if not a.dtype == b.dtype == out.dtype:
        raise TypingError(f"gemm: dtypes differ ({a.dtype}, {b.dtype}, {out.dtype})")
    sig = types.none(a, b, out)

    def codegen(context, builder, sig, args):
        ensure_blas()
        x, y, z = (make_array(t)(context, builder, v) for t, v in zip(sig.args, args))
        x_shapes = cgutils.unpack_tuple(builder, x.shape)
        y_shapes = cgutils.unpack_tuple(builder, y.shape)
        z_shapes = cgutils.unpack_tuple(builder, z.shape)
        m, k = x_shapes
        n = y_shapes[1]
        zero = ir.Constant(m.type, 0)
        nonempty = builder.and_(builder.icmp_signed("!=", m, zero), builder.icmp_signed("!=", n, zero))
        with builder.if_then(nonempty):
            with builder.if_else(builder.icmp_signed("==", k, zero), likely=False) as (no_k, has_k):
                with no_k:
                    cgutils.memset(builder, z.data, builder.mul(z.itemsize, z.nitems), 0)
                with has_k:
                    call_xxgemm(context, builder, sig.args[0], x_shapes, x.data, sig.args[1], y_shapes, y.data,
                                sig.args[2], z_shapes, z.data)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def matrix(typingctx, flat, start, rows, cols):
    """The rows×cols view of ``flat[start:start + rows * cols]`` (see the module docstring)."""
    _check("matrix: flat", flat, 1, "C")
    if not all(isinstance(t, types.Integer) for t in (start, rows, cols)):
        raise TypingError(f"matrix: start, rows and cols must be integers, got {start}, {rows}, {cols}")
    ret = flat.copy(ndim=2, layout="C")
    sig = ret(flat, start, rows, cols)

    def codegen(context, builder, sig, args):
        src = make_array(flat)(context, builder, args[0])
        first, n_rows, n_cols = (context.cast(builder, v, t, types.intp) for v, t in zip(args[1:], sig.args[1:]))
        (length,) = cgutils.unpack_tuple(builder, src.shape)
        zero = ir.Constant(length.type, 0)
        end = builder.add(first, builder.mul(n_rows, n_cols))
        bad = builder.or_(builder.or_(builder.icmp_signed("<", first, zero), builder.icmp_signed("<", n_rows, zero)),
                          builder.or_(builder.icmp_signed("<", n_cols, zero), builder.icmp_signed(">", end, length)))
        with builder.if_then(bad, likely=False):
            context.call_conv.return_user_exc(builder, ValueError, ("matrix: the view does not fit in the vector",))
        view = make_array(ret)(context, builder)
        populate_array(view, data=cgutils.gep_inbounds(builder, src.data, first), shape=[n_rows, n_cols],
                       strides=[builder.mul(n_cols, src.itemsize), src.itemsize], itemsize=src.itemsize,
                       meminfo=src.meminfo, parent=src.parent)
        return impl_ret_borrowed(context, builder, ret, view._getvalue())

    return sig, codegen


if not NUMBA_INTERNALS:                               # pragma: no cover - depends on the Numba release
    gemm, matrix = gemm_numpy, matrix_numpy
