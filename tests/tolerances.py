"""The per-dtype tolerances of the gpu_act test suite (the table is gpu_act._tolerances), and ``assert_close``.

Every comparison of a gpu_act result with the float64 reference goes through
``assert_close(actual, expected, dtype)``:

* NaN positions must match exactly;
* infinities must match exactly (same positions, same sign).  ``expected`` is first
  rounded to ``dtype``, so a reference value beyond the dtype's range counts as the
  matching infinity (e.g. selu(65504) in float16 is +inf);
* finite entries satisfy ``|actual - expected| <= atol + rtol * |expected|`` with the
  float64 (unrounded) expected value and the (rtol, atol) of ``dtype`` from ``TOLERANCES``.

float16 is computed in float32 and rounded to half (unit roundoff 2**-11 ~ 4.9e-4), hence
2e-3.  float32 allows a few ulps (2**-24 ~ 6e-8) of accumulated error in exp/log/erf
chains and row reductions.  float64 allows ~100 ulps.

``FD_RTOL`` / ``FD_ATOL`` are for central finite differences in float64 (step ~1e-6:
truncation error ~h**2, cancellation error ~1e-16/h ~ 1e-10), which are far less exact
than the float64 kernels themselves.
"""

from __future__ import annotations

import numpy as np

from gpu_act._tolerances import tolerance  # the table lives in the package, shared with gpu-act selfcheck

FD_RTOL = 1e-6
FD_ATOL = 1e-7

DTYPES = (np.float16, np.float32, np.float64)


def tol(dtype):
    """(rtol, atol) for ``dtype``."""
    t = tolerance(dtype)
    return t["rtol"], t["atol"]


def _describe(mask, actual, expected, limit=8):
    idx = np.argwhere(mask)[:limit]
    lines = []
    for i in idx:
        i = tuple(int(k) for k in i)
        lines.append(f"  at {i}: actual={actual[i]!r} expected={expected[i]!r}")
    return "\n".join(lines)


def assert_close(actual, expected, dtype, *, rtol=None, atol=None, msg=""):
    """Assert ``actual`` (an array of ``dtype``) matches the float64 ``expected``.

    ``rtol``/``atol`` default to the table; the overrides exist only for finite-difference
    checks (``FD_RTOL``/``FD_ATOL``), never to loosen a kernel comparison.
    """
    dtype = np.dtype(dtype)
    actual = np.asarray(actual)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, (
        f"{msg} shape mismatch: actual {actual.shape} vs expected {expected.shape}")
    r, a = tol(dtype)
    rtol = r if rtol is None else rtol
    atol = a if atol is None else atol

    act = actual.astype(np.float64)
    with np.errstate(all="ignore"):
        exp_rounded = expected.astype(dtype).astype(np.float64)

    nan_a = np.isnan(act)
    nan_e = np.isnan(exp_rounded)
    bad = nan_a != nan_e
    if bad.any():
        raise AssertionError(
            f"{msg} NaN positions differ ({int(bad.sum())} of {bad.size}):\n"
            + _describe(bad, act, expected))

    inf_a = np.isinf(act)
    inf_e = np.isinf(exp_rounded)
    bad = (inf_a | inf_e) & ~(inf_a & inf_e & (act == exp_rounded))
    if bad.any():
        raise AssertionError(
            f"{msg} infinities differ ({int(bad.sum())} of {bad.size}):\n"
            + _describe(bad, act, exp_rounded))

    fin = ~(nan_a | inf_a)
    with np.errstate(all="ignore"):
        err = np.abs(act - expected)
        allowed = atol + rtol * np.abs(expected)
    bad = fin & ~(err <= allowed)
    if bad.any():
        worst = np.max(np.where(bad, err, 0.0))
        raise AssertionError(
            f"{msg} {int(bad.sum())} of {bad.size} elements outside "
            f"rtol={rtol} atol={atol} for {dtype} (max abs err {worst:.3g}):\n"
            + _describe(bad, act, expected))
