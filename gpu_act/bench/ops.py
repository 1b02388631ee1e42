"""What the benchmark measures, driven by the registry.

An ``Op`` makes its inputs for a shape and dtype, counts its minimum memory
traffic (every input read once, every output written once), and calls gpu_act.
Row-wise ops work on (rows, cols) along the last axis; elementwise ops are
every registry activation, forward ``NAME(x)`` and backward
``NAME_backward(g, x)``, with default parameters.
"""

from dataclasses import dataclass

import numpy as np

import gpu_act as ga
from gpu_act.registry import PLAIN

ROW_SHAPES = ((4096, 4096), (256, 32000), (65536, 128), (32, 262144))
SWEEP_COLS = (128, 512, 2048, 8192, 32768, 131072, 262144)
SWEEP_ELEMENTS = 1 << 22  # rows x cols of each sweep point
ELEMENTWISE_SIZE = 1 << 24


@dataclass(frozen=True)
class Op:
    name: str
    group: str  # "rowwise" or "elementwise"
    arity: int  # float inputs: 1 (x) or 2 (grad, x or y)

    def inputs(self, shape, dtype, rng):
        """Host (NumPy) inputs: x ~ 3 N(0, 1); for backward ops (g, x or y);
        for cross-entropy (logits, int64 targets)."""
        dtype = np.dtype(dtype)
        x = (3 * rng.standard_normal(shape, np.float32)).astype(dtype)
        if self.name == "cross_entropy":
            return x, rng.integers(0, shape[-1], shape[:-1])
        if self.arity == 1:
            return (x,)
        g = rng.standard_normal(shape, np.float32).astype(dtype)
        if self.name == "softmax_backward":
            x = ga.softmax(x.astype(np.float32)).astype(dtype)
        elif self.name == "log_softmax_backward":
            x = ga.log_softmax(x.astype(np.float32)).astype(dtype)
        return g, x

    def traffic(self, shape, dtype):
        """Bytes read and written at the least: inputs once, outputs once."""
        n = int(np.prod(shape)) * np.dtype(dtype).itemsize
        if self.name == "cross_entropy":
            return 2 * n + 8 * int(np.prod(shape[:-1]))  # logits in, gradient out, int64 targets
        return (self.arity + 1) * n

    def gpu_act(self, backend):
        """gpu_act's version as a callable on arrays."""
        if self.name == "cross_entropy":
            return lambda z, t: ga.cross_entropy(z, t, return_grad=True, backend=backend)
        f = getattr(ga, self.name)
        return lambda *a: f(*a, backend=backend)


ROWWISE = tuple(
    Op(n, "rowwise", a)
    for n, a in (
        ("softmax", 1),
        ("log_softmax", 1),
        ("softmax_backward", 2),
        ("log_softmax_backward", 2),
        ("cross_entropy", 1),
    )
)
ELEMENTWISE = tuple(Op(n + s, "elementwise", a) for n in PLAIN for s, a in (("", 1), ("_backward", 2)))
ALL = {op.name: op for op in ROWWISE + ELEMENTWISE}
