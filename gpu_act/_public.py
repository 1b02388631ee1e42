"""The public functions by name: those of ``elementwise``, ``gated``,
``rowwise``, ``simplex`` and ``losses``. ``gpu_act`` exports them
(Dask-aware); the Dask layer's block tasks call them by name."""

from . import elementwise, gated, losses, rowwise, simplex

FUNCTIONS = {
    **elementwise.FUNCTIONS,
    **gated.FUNCTIONS,
    **{
        f.__name__: f
        for f in (
            elementwise.prelu,
            elementwise.prelu_backward,
            elementwise.rrelu,
            elementwise.rrelu_backward,
            losses.cross_entropy,
            losses.nll_loss,
            losses.binary_cross_entropy,
            losses.binary_cross_entropy_with_logits,
            rowwise.softmax,
            rowwise.log_softmax,
            rowwise.softmax_backward,
            rowwise.log_softmax_backward,
            rowwise.softmin,
            rowwise.softmin_backward,
            rowwise.logsumexp,
            rowwise.logsumexp_backward,
            rowwise.maxout,
            rowwise.maxout_backward,
            simplex.sparsemax,
            simplex.sparsemax_backward,
        )
    },
}
