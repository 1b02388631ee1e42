"""Launchers of the sparsemax kernels (kernels/sparsemax.cu) on strided CuPy
arrays, on CuPy's current stream.

The teams are ``_config.plan``'s for row kernels; ``plan`` adds what only
sparsemax needs: the forward's passes over a row (a bisection, kernels/
sparsemax.cu) read it from dynamic shared memory when a block team reduces it
and it fits there without the opt-in attribute (``_config.shared_row``).
"""

import numpy as np

from ..._dtypes import COMPUTE
from ... import kernels
from . import _config, _layout, _modules

i64 = np.int64

def plan(rows, n, elem_stride, row_stride, compute_size):
    """(team, grid, block, shared bytes) of the forward over ``rows`` rows of ``n``
    elements: ``_config.plan``'s team, grid and block, and ``_config.shared_row``."""
    team, grid, block = _config.plan("rows", rows, n, elem_stride, row_stride, compute_size)
    return team, grid, block, _config.shared_row(team, n, compute_size)


def _launch(direction, inputs, out, axis):
    dtype = out.dtype.name
    csize = COMPUTE[out.dtype].itemsize

    def launch(arrays, P, Q, strides):
        n = arrays[0].shape[axis]
        flat = [i64(s) for st in strides for s in st]
        args = [*arrays, i64(P * Q), i64(Q), i64(n), *flat]
        if direction == "fwd":
            team, grid, block, shared = plan(P * Q, n, strides[0][2], strides[0][1], csize)
            args.append(np.int32(shared > 0))
        else:
            team, grid, block = _config.plan("rows", P * Q, n, strides[0][2], strides[0][1], csize)
            shared = 0
        fn = _modules.function("sparsemax.cu", dtype, kernels.sparsemax_name(direction, dtype, team))
        fn((grid,), (block,), tuple(args), shared_mem=shared)

    _layout.run(launch, inputs, out, axis)


def sparsemax(ctx, x, axis, out):
    """out = sparsemax of x along ``axis``."""
    _launch("fwd", [x], out, axis)


def sparsemax_backward(ctx, g, y, axis, out):
    """out = the gradient through sparsemax from its output y and incoming gradient g."""
    _launch("bwd", [g, y], out, axis)
