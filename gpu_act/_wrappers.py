"""How an elementwise kernel applies a registry formula to its operands.

Each wrapper takes the kernel's three input values a, b, c (unused ones are
dead loads) and its parameter tuple p, and calls the formula ``_g`` that
``_compile.instantiate`` binds. The CPU and CUDA kernels share them.
"""


def _apply(a, b, c, p):
    # f(x, *params)
    return _g(a, *p)  # noqa: F821 (bound by instantiate)


def _scaled(a, b, c, p):
    # grad_output * f'(x, *params)
    return a * _g(b, *p)  # noqa: F821


def _apply_slope(a, b, c, p):
    # f(x, slope) with a per-element slope (PReLU, RReLU training)
    return _g(a, b)  # noqa: F821


def _scaled_slope(a, b, c, p):
    # grad_output * f'(x, slope)
    return a * _g(b, c)  # noqa: F821


def _copy(a, b, c, p):
    # a strided copy (the CUDA backend's staging)
    return a


WRAPPERS = {w.__name__: w for w in (_apply, _scaled, _apply_slope, _scaled_slope, _copy)}
