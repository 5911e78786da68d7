"""One matrix product for the Numba kernels, lowered straight to BLAS ``gemm``.

``gemm(a, b, out)`` writes ``out = a @ b`` like ``np.dot(a, b, out)`` does, for 2-D float32 or
float64 arrays that are C-contiguous or transposes of C-contiguous arrays (F layout), into a
C-contiguous ``out``. It is what ``np.dot`` ends in — the same ``numba_xxgemm`` helper of Numba,
which calls SciPy's BLAS — without what ``np.dot`` compiles around it: ``np.dot`` is an overload
whose implementation is a separate function compiled once per argument layout (three layouts in
these kernels, about 0.1 s of a cold compile each) with its own checks. This is an intrinsic: its
few instructions are emitted into the calling kernel, and nothing else is compiled.

The caller is responsible for the shapes (``a`` m×k, ``b`` k×n, ``out`` m×n); the kernels'
products are checked against dense NumPy references in ``tests/test_kernels.py``. Empty products
follow ``np.dot``: nothing to do when m or n is 0, ``out`` zero-filled when k is 0 (BLAS rejects
zero leading dimensions).
"""
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.extending import intrinsic
from numba.np.arrayobj import make_array
from numba.np.linalg import call_xxgemm, ensure_blas

__all__ = ["gemm"]


def _check(name, ty, layouts):
    if not (isinstance(ty, types.Array) and ty.ndim == 2 and ty.layout in layouts
            and ty.dtype in (types.float32, types.float64)):
        raise TypingError(f"gemm: {name} must be a 2-D float32/float64 array of layout "
                          f"{' or '.join(layouts)}, got {ty}")


@intrinsic
def gemm(typingctx, a, b, out):
    """``out = a @ b`` (see the module docstring)."""
    _check("a", a, "CF")
    _check("b", b, "CF")
    _check("out", out, "C")
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
