"""How an elementwise kernel applies a registry formula to its operands, by
the names of the backend interface (``unary``, ``scaled``, ...; the CuPy
backend's C bodies in ``kernels/__init__.py`` carry the same names).

Each wrapper takes the kernel's three input values a, b, c (unused ones are
dead loads) and its parameter tuple p, and calls the formula ``_g`` that
``_compile.instantiate`` binds. The CPU and CUDA kernels share them.
"""


def unary(a, b, c, p):
    # f(x, *params)
    return _g(a, *p)  # noqa: F821 (bound by instantiate)


def scaled(a, b, c, p):
    # grad_output * f'(x, *params)
    return a * _g(b, *p)  # noqa: F821


def unary_slope(a, b, c, p):
    # f(x, slope) with a per-element slope (PReLU, RReLU training)
    return _g(a, b)  # noqa: F821


def scaled_slope(a, b, c, p):
    # grad_output * f'(x, slope)
    return a * _g(b, c)  # noqa: F821


def copy(a, b, c, p):
    # a strided copy (the CUDA backend's staging)
    return a


WRAPPERS = {w.__name__: w for w in (unary, scaled, unary_slope, scaled_slope, copy)}
