"""The backends: one package each ("cpu", "cuda", "cupy"), imported on first use
by ``gpu_act._dispatch``, never by each other. ``Backend`` is the interface
each one offers the public functions (``tests/core/test_structure.py`` checks it).
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
    BFLOAT16: bool  # whether it computes bfloat16 (ml_dtypes) arrays

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

    def halves(self, ctx, a, axis):
        """(first half, second half) of ``a`` along ``axis`` (of even length), views."""

    # ---------------------------------------------------------------- elementwise
    def unary(self, ctx, f, x, params, out):
        """out = f(x, *params), f a registry formula."""

    def scaled(self, ctx, f, g, x, params, out):
        """out = g * f(x, *params)."""

    def unary_slope(self, ctx, f, x, slope, out):
        """out = f(x, slope), slope broadcastable to x."""

    def scaled_slope(self, ctx, f, g, x, slope, out):
        """out = g * f(x, slope)."""

    def gated_backward(self, ctx, f, d, g, a, b, params, da, db):
        """da = g * b * d(a, *params), db = g * f(a, *params) in one pass (the
        gradient of glu's halves); f and d a registry formula and its
        derivative; all five arrays of one shape. da and db may be a and b
        themselves (in place) and are written through a temporary where they
        overlap an input otherwise."""

    def rrelu_slopes(self, ctx, shape, key, lower, upper, dtype):
        """Per-element slopes U(lower, upper) keyed by (key, C-order flat index)."""

    def channel_sum(self, ctx, a, channel_axis, dtype):
        """The sum over every axis but ``channel_axis`` (all when None), as 1-D ``dtype``."""

    # ---------------------------------------------------------------- row-wise
    # The row-wise ops take ``mask``: None, or a bool array of x's rank whose
    # axes are x's or 1 (read through stride 0, never copied where the layout
    # allows), True where an entry takes part. Masked entries are left out of
    # the row's max and sums and get 0 (probabilities, gradients) or -inf (log
    # probabilities); a row with no unmasked entry is all 0 (all -inf), its
    # logsumexp -inf.
    def softmax(self, ctx, x, axis, temperature, log, mask, out):
        """softmax (``log``: log-softmax) of x/T along ``axis`` into out; a
        negative ``temperature`` -T gives softmin, softmax(-x/T), from the
        loads of x negated (no negated copy)."""

    def softmax_backward(self, ctx, g, y, axis, temperature, log, mask, out):
        """The gradient through (log-)softmax from its output y (softmin's with
        a negative ``temperature``, as ``softmax``)."""

    def logsumexp(self, ctx, x, axis, temperature, mask, out):
        """T log sum e^{x/T} along ``axis``; ``out`` has x's rank, axis ``axis``
        of length 1 (x may have no elements along ``axis``: -inf)."""

    def logsumexp_backward(self, ctx, g, x, r, axis, temperature, mask, out):
        """g e^{(x - r)/T} (NaN where r is not finite): ``g`` and logsumexp's
        result ``r`` have x's rank with axis ``axis`` of length 1."""

    def sparsemax(self, ctx, x, axis, out):
        """The projection of each row of x along ``axis`` onto the probability
        simplex, max(x - tau, 0) with the row's threshold tau making it sum to 1,
        into out (which may be x itself)."""

    def sparsemax_backward(self, ctx, g, y, axis, out):
        """The gradient through sparsemax from its output y: g minus the mean of
        g over the support {y > 0} there, 0 elsewhere."""

    def maxout(self, ctx, x, pool, axis, out):
        """The max of each run of ``pool`` entries along ``axis``."""

    def maxout_backward(self, ctx, g, x, pool, axis, out):
        """g routed to the first maximum of each group."""

    # ---------------------------------------------------------------- losses
    # Losses come back unreduced, per row or per element, in the compute dtype
    # (float32 for float16 input); ``total`` reduces them. Gradients are scaled
    # by ``scale`` (the reduction's 1/denominator, else 1), in the input's dtype
    # and shape, C-contiguous.
    def live_rows(self, ctx, mask, shape, axis):
        """(live, count) of a ``mask`` (as the row-wise ops take it) over an array
        of ``shape``: whether each row along ``axis`` has an unmasked entry, a
        bool array of the rows' shape (broadcast where the mask is), and how
        many rows do (a host read-back on a GPU)."""

    def check_targets(self, ctx, fname, target, classes, ignore_index, weight, live=None):
        """(count, denominator) of the targets not ignored: their number, and the
        sum of ``weight`` over their classes in float64 (their number when
        ``weight`` is None); ValueError naming a target out of range. Rows
        where ``live`` (``live_rows``'s) is False are ignored as well."""

    def cross_entropy(self, ctx, z, target, axis, index, ignore_index, eps, weight, z_loss, softcap, scale, want_grad, want_lse,
                      mask=None):
        """(row losses, gradient or None, row log-sum-exp or None) of softmax
        cross-entropy along ``axis``: class indices (``index``) or probabilities;
        ``eps`` label smoothing; ``weight`` None or C class weights (compute
        dtype); ``z_loss`` * lse^2 added per row (0: none); ``softcap`` None or
        the cap c of c tanh(z / c). Ignored rows: loss and gradient 0. With
        ``mask`` (as the row-wise ops take it) a row's classes are its unmasked
        ones: label smoothing spreads over them, masked classes get gradient
        0, target mass on one costs +inf; a row with none is ignored (its lse
        -inf)."""

    def nll_loss(self, ctx, lp, target, axis, ignore_index, weight, scale, want_grad):
        """(row losses, gradient or None) of -w[t] lp[t] along ``axis``."""

    def binary_cross_entropy(self, ctx, z, t, w, pw, logits, scale, want_grad):
        """(element losses, gradient or None) of binary cross-entropy on logits
        (``logits``; ``formulas.bce_logits_*``) or on probabilities
        (``formulas.bce_*``); t has z's shape; ``w`` and ``pw`` are None or
        arrays of z's rank whose axes are z's or 1 (broadcast)."""

    def any_negative(self, ctx, a):
        """Whether ``a`` has an entry < 0 (a host read-back on a GPU; for small
        parameter arrays such as pos_weight)."""

    def total(self, ctx, a, scale, dtype):
        """0-d array of ``dtype``: the sum of every element of ``a``, accumulated
        in float64, times ``scale``."""
