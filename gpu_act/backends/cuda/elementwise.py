"""The elementwise operations of the backend interface: a registry formula
applied to every element (``_map``), written through a temporary when the
output overlaps an input (``_staging``), and RReLU's per-element slopes.
"""

import numpy as np

from ... import _cuda
from ..._dtypes import COMPUTE
from ...formulas import rrelu_slope
from . import _arrays, _config, _kernels, _map, _operands, _staging

cuda = _cuda.cuda


def _run(ctx, wrapper, formula, arrays, params, out):
    """out = wrapper(arrays...) elementwise; arrays share out's shape."""
    _staging.staged(ctx, out, arrays, lambda target: _map.run(ctx, wrapper, formula, arrays, params, target))


def unary(ctx, f, x, params, out):
    """out = f(x, *params)"""
    _run(ctx, "unary", f, [x], params, out)


def scaled(ctx, f, g, x, params, out):
    """out = g * f(x, *params)"""
    _run(ctx, "scaled", f, [g, x], params, out)


def unary_slope(ctx, f, x, slope, out):
    """out = f(x, slope), slope an array broadcastable to x"""
    _run(ctx, "unary_slope", f, [x, _operands.broadcast(slope, x.shape)], (), out)


def scaled_slope(ctx, f, g, x, slope, out):
    """out = g * f(x, slope)"""
    _run(ctx, "scaled_slope", f, [g, x, _operands.broadcast(slope, x.shape)], (), out)


def _fill_slopes(out, key, lower, upper):
    i = cuda.grid(1)
    step = cuda.gridsize(1)
    while i < out.shape[0]:
        out[i] = _slope(key, np.uint64(i), lower, upper)  # noqa: F821
        i += step


def slopes_kernel(ctype):
    ctype = np.dtype(ctype)
    return _kernels.cached(
        ("slopes", ctype),
        lambda: _kernels.kernel(
            _fill_slopes, {"_slope": _kernels.formulas(ctype)[rrelu_slope.__name__]}, "slopes", ctype, "elementwise"
        ),
    )


def rrelu_slopes(ctx, shape, key, lower, upper, dtype):
    """Per-element slopes U(lower, upper) keyed by (key, C-order flat index)."""
    ctype = COMPUTE[np.dtype(dtype)]
    n = int(np.prod(shape))
    out = _arrays.empty(ctx, (n,), ctype)
    config = _config.plan("elementwise", 1, n, "unit", ctype.itemsize, _config.limits(ctx))
    args = [_operands.contiguous_view(ctx, out), np.uint64(key), ctype.type(lower), ctype.type(upper)]
    _kernels.launch(ctx, slopes_kernel(ctype), config, args)
    return out.reshape(tuple(shape))
