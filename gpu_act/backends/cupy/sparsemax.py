"""Launchers of the sparsemax kernels (kernels/sparsemax.cu) on strided CuPy
arrays, on CuPy's current stream.

The teams are ``_config.plan``'s for row kernels; ``plan`` adds what only
sparsemax needs: the forward's passes over a row (a bisection, kernels/
sparsemax.cu) read it from dynamic shared memory when a block team reduces it
and it fits there without the opt-in attribute.
"""

import numpy as np

from ..._dtypes import COMPUTE
from ... import kernels
from . import _config, _layout, _modules

i64 = np.int64

# dynamic shared memory a launch may take without the opt-in attribute: 48 KiB
# for static and dynamic together, less 1 KiB for the team's own reductions
SHARED_ROW_MAX = 47 * 1024


def plan(rows, n, elem_stride, row_stride, compute_size):
    """(team, grid, block, shared bytes) of the forward over ``rows`` rows of ``n``
    elements: ``_config.plan``'s team, grid and block, and the row's bytes in
    the compute type for a block team whose row fits ``SHARED_ROW_MAX`` (else 0)."""
    team, grid, block = _config.plan("rows", rows, n, elem_stride, row_stride, compute_size)
    row_bytes = n * compute_size
    return team, grid, block, row_bytes if team == "block" and row_bytes <= SHARED_ROW_MAX else 0


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
