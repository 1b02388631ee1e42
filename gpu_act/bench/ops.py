"""What the benchmark measures, driven by the registry.

An ``Op`` makes its inputs for a shape and dtype, counts its minimum memory
traffic (every input read once, every output written once), and calls gpu_act.
Row-wise ops work on (rows, cols) along the last axis; elementwise ops are
every registry activation, forward ``NAME(x)`` and backward
``NAME_backward(g, x)``, with default parameters; the losses are
cross-entropy with class weights, z-loss and softcap on (rows, vocabulary)
logits, and binary cross-entropy on logits over a flat array, each returning
the loss and its gradient. The family group: logsumexp and sparsemax over
rows, softmax with a mask (one per element, and one row broadcast to every
row), and a SwiGLU step (forward and backward over x of shape (rows, 2, width), the
halves along axis 1, as a transformer MLP's fused projection gives them).
"""

from dataclasses import dataclass

import numpy as np

import gpu_act as ga
from gpu_act.registry import PLAIN

ROW_SHAPES = ((4096, 4096), (256, 32000), (65536, 128), (32, 262144))
# language-model batches: vocabularies of 32000 (Llama 2) and 128256 (Llama 3)
LOSS_SHAPES = ((4096, 32000), (8192, 128256))
SWEEP_COLS = (128, 512, 2048, 8192, 32768, 131072, 262144)
SWEEP_ELEMENTS = 1 << 22  # rows x cols of each sweep point
ELEMENTWISE_SIZE = 1 << 24
SPARSEMAX_SHAPES = ((4096, 4096), (32, 262144))
MASKED_SHAPES = ((4096, 4096),)
MASKED = {"softmax_masked": "full", "softmax_masked_row": "row"}  # op -> its mask's shape: x's, or (1, cols)
SWIGLU_SHAPES = ((8192, 2, 11008),)  # Llama 2 7B's MLP width, a batch of 8192 tokens
Z_LOSS = 1e-4  # cross_entropy_capped's z-loss and softcap (Gemma 2 caps its final logits at 30)
SOFTCAP = 30.0


def dtype_of(name):
    """The NumPy dtype a benchmark dtype name stands for (bfloat16: ml_dtypes')."""
    if str(name) == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


@dataclass(frozen=True)
class Op:
    name: str
    group: str  # the CLI's groups: "rowwise", "elementwise" (the registry's activations), "losses" or "family"
    arity: int  # float inputs of the op's shape: 1 (x; logits) or 2 (grad, x or y; logits, target)
    shapes: tuple = None  # default (rows, cols) shapes of a row-wise op; None: a flat array of ELEMENTWISE_SIZE

    def inputs(self, shape, dtype, rng):
        """Host (NumPy) inputs: x ~ 3 N(0, 1); for backward ops (g, x or y);
        for cross-entropy (logits, int64 targets[, class weights in [0.5, 1.5)]);
        for binary cross-entropy (logits, targets in [0, 1))."""
        dtype = dtype_of(dtype)
        x = (3 * rng.standard_normal(shape, np.float32)).astype(dtype)
        if self.name == "cross_entropy":
            return x, rng.integers(0, shape[-1], shape[:-1])
        if self.name == "cross_entropy_capped":
            return x, rng.integers(0, shape[-1], shape[:-1]), rng.uniform(0.5, 1.5, shape[-1]).astype(dtype)
        if self.name == "binary_cross_entropy_with_logits":
            return x, rng.random(shape, np.float32).astype(dtype)
        if self.name in MASKED:  # nine entries in ten take part; the first of every row does
            mask = rng.random(shape if MASKED[self.name] == "full" else (1, shape[-1])) < 0.9
            mask[..., 0] = True
            return x, mask
        if self.name == "swiglu_step":  # x and the gradient of y (the halves' shape)
            g = rng.standard_normal(shape[:1] + (1,) + shape[2:], np.float32).astype(dtype)
            return x, g
        if self.arity == 1:
            return (x,)
        g = rng.standard_normal(shape, np.float32).astype(dtype)
        if self.name == "softmax_backward":
            x = ga.softmax(x.astype(np.float32)).astype(dtype)
        elif self.name == "log_softmax_backward":
            x = ga.log_softmax(x.astype(np.float32)).astype(dtype)
        return g, x

    def traffic(self, shape, dtype):
        """Bytes read and written at the least: inputs once, outputs once (a
        loss's scalar is not counted, its gradient is)."""
        itemsize = dtype_of(dtype).itemsize
        n = int(np.prod(shape)) * itemsize
        targets = 8 * int(np.prod(shape[:-1]))  # int64 class indices, one per row
        if self.name == "cross_entropy":
            return 2 * n + targets  # logits in, gradient out
        if self.name == "cross_entropy_capped":
            return 2 * n + targets + shape[-1] * itemsize  # and the class weights
        if self.name == "logsumexp":
            return n + int(np.prod(shape[:-1])) * itemsize  # one result per row
        if self.name in MASKED:  # x in, y out, the bool mask in
            return 2 * n + (n // itemsize if MASKED[self.name] == "full" else shape[-1])
        if self.name == "swiglu_step":
            return 3 * n  # x in, y (half) out, g (half) in, the gradient of x out
        return (self.arity + 1) * n

    def gpu_act(self, backend):
        """gpu_act's version as a callable on arrays."""
        if self.name == "cross_entropy":
            return lambda z, t: ga.cross_entropy(z, t, return_grad=True, backend=backend)
        if self.name == "cross_entropy_capped":
            return lambda z, t, w: ga.cross_entropy(z, t, weight=w, z_loss=Z_LOSS, softcap=SOFTCAP, return_grad=True,
                                                    backend=backend)
        if self.name == "binary_cross_entropy_with_logits":
            return lambda z, y: ga.binary_cross_entropy_with_logits(z, y, return_grad=True, backend=backend)
        if self.name == "swiglu_step":
            return lambda x, g: (ga.swiglu(x, 1, backend=backend), ga.swiglu_backward(g, x, 1, backend=backend))
        if self.name in MASKED:
            return lambda x, m: ga.softmax(x, mask=m, backend=backend)
        f = getattr(ga, self.name)
        return lambda *a: f(*a, backend=backend)


ROWWISE = tuple(
    Op(n, "rowwise", a, ROW_SHAPES)
    for n, a in (
        ("softmax", 1),
        ("log_softmax", 1),
        ("softmax_backward", 2),
        ("log_softmax_backward", 2),
        ("cross_entropy", 1),
    )
)
ELEMENTWISE = tuple(Op(n + s, "elementwise", a) for n in PLAIN for s, a in (("", 1), ("_backward", 2)))
LOSSES = (
    Op("cross_entropy_capped", "losses", 1, LOSS_SHAPES),  # weight=, z_loss=Z_LOSS, softcap=SOFTCAP
    Op("binary_cross_entropy_with_logits", "losses", 2),
)
FAMILY = (
    Op("logsumexp", "family", 1, ROW_SHAPES),
    Op("sparsemax", "family", 1, SPARSEMAX_SHAPES),
    Op("softmax_masked", "family", 1, MASKED_SHAPES),  # inputs (x, mask)
    Op("softmax_masked_row", "family", 1, MASKED_SHAPES),
    Op("swiglu_step", "family", 1, SWIGLU_SHAPES),  # inputs (x, g); returns (y, the gradient of x)
)
ALL = {op.name: op for op in ROWWISE + ELEMENTWISE + LOSSES + FAMILY}
