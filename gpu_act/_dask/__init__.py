"""gpu_act on Dask arrays.

A public gpu_act function called with a ``dask.array.Array`` argument
(``gpu_act``'s public functions send such calls here; nothing else imports Dask)
returns a lazy Dask array. Every block is computed by gpu_act itself, so each
chunk runs on the backend its type selects (NumPy chunks: "cpu", CuPy chunks:
"cupy"); ``backend=`` is passed on to every block. Arguments are checked when
the graph is built; index targets of cross_entropy are range-checked block by
block when computed.
"""

import inspect

from . import elementwise, gated, losses, rowwise, sparsemax

_BUILDERS = {
    **{name: gated.glu for name in ("glu", "swiglu", "geglu", "reglu")},
    **{name + "_backward": gated.glu_backward for name in ("glu", "swiglu", "geglu", "reglu")},
    "prelu": elementwise.prelu,
    "prelu_backward": elementwise.prelu_backward,
    "rrelu": elementwise.rrelu,
    "rrelu_backward": elementwise.rrelu,
    "softmax": rowwise.softmax,
    "log_softmax": rowwise.softmax,
    "softmax_backward": rowwise.softmax_backward,
    "log_softmax_backward": rowwise.softmax_backward,
    "softmin": rowwise.softmax,
    "softmin_backward": rowwise.softmax_backward,
    "logsumexp": rowwise.logsumexp,
    "logsumexp_backward": rowwise.logsumexp_backward,
    "maxout": rowwise.maxout,
    "maxout_backward": rowwise.maxout_backward,
    "sparsemax": sparsemax.sparsemax,
    "sparsemax_backward": sparsemax.sparsemax_backward,
    "cross_entropy": losses.cross_entropy,
    "nll_loss": losses.nll_loss,
    "binary_cross_entropy": losses.binary_cross_entropy,
    "binary_cross_entropy_with_logits": losses.binary_cross_entropy,
}


def call(fn, args, kwargs):
    """The lazy result of the public function ``fn`` on ``args``/``kwargs``, at least one a Dask array."""
    name = fn.__name__
    bound = inspect.signature(fn).bind(*args, **kwargs)
    bound.apply_defaults()
    a = dict(bound.arguments)
    if a.pop("out", None) is not None:
        raise TypeError(
            f"gpu_act.{name}: out= is not accepted with Dask arrays; the result is a new lazy Dask array"
        )
    return _BUILDERS.get(name, elementwise.plain)(name, a)
