"""The backends: one package each ("cpu", "cuda", "cupy"), imported on first use
by ``gpu_act._dispatch``, never by each other. ``Backend`` is the interface
each one offers the public functions (``tests/test_structure.py`` checks it).
"""

from typing import Protocol

KNOWN = ("cpu", "cuda", "cupy")


class Backend(Protocol):
    """What a backend module provides.

    The public functions validate arguments and allocate results before they
    call a backend: arrays are the backend's native arrays, non-empty unless
    stated, and ``out`` has the right shape and dtype. Every function after
    ``context`` takes the call context ``ctx`` first: where the call runs (for
    the GPU backends the device, the stream and the kind of array results are
    made of); the CPU backend's is None.
    """

    NAME: str

    def available(self):
        """True when the backend can run here."""

    def context(self, primary, stream):
        """The call context of a call whose primary input is ``primary``, with
        ``stream=`` (None: the input's own stream)."""

    # ---------------------------------------------------------------- arrays
    def asarray(self, ctx, obj):
        """``obj`` as a native array, without copying."""

    def as_out(self, ctx, fname, obj):
        """``obj`` as a native array to write into; ValueError when read-only."""

    def empty(self, ctx, shape, dtype):
        """A new C-contiguous array."""

    def astype(self, ctx, a, dtype):
        """``a`` in ``dtype`` (``a`` itself when it has it)."""

    def wrap(self, ctx, result, like):
        """``result`` as an object of ``like``'s kind, without copying."""

    # ---------------------------------------------------------------- elementwise
    def unary(self, ctx, f, x, params, out):
        """out = f(x, *params), f a registry formula."""

    def scaled(self, ctx, f, g, x, params, out):
        """out = g * f(x, *params)."""

    def unary_slope(self, ctx, f, x, slope, out):
        """out = f(x, slope), slope broadcastable to x."""

    def scaled_slope(self, ctx, f, g, x, slope, out):
        """out = g * f(x, slope)."""

    def rrelu_slopes(self, ctx, shape, key, lower, upper, dtype):
        """Per-element slopes U(lower, upper) keyed by (key, C-order flat index)."""

    def channel_sum(self, ctx, a, channel_axis, dtype):
        """The sum over every axis but ``channel_axis`` (all when None), as 1-D ``dtype``."""

    # ---------------------------------------------------------------- row-wise
    def softmax(self, ctx, x, axis, temperature, log, out):
        """softmax (``log``: log-softmax) of x along ``axis`` into out."""

    def softmax_backward(self, ctx, g, y, axis, temperature, log, out):
        """The gradient through (log-)softmax from its output y."""

    def maxout(self, ctx, x, pool, axis, out):
        """The max of each run of ``pool`` entries along ``axis``."""

    def maxout_backward(self, ctx, g, x, pool, axis, out):
        """g routed to the first maximum of each group."""

    def check_targets(self, ctx, fname, target, classes, ignore_index):
        """The number of targets not ignored; ValueError for one out of range."""

    def cross_entropy(self, ctx, z, target, axis, index, ignore_index, eps, reduction, count, want_grad):
        """(loss reduced as asked, gradient or None)."""
