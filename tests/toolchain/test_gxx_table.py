"""The C table of the formulas (kernels/activations.cuh and the binary
cross-entropy of kernels/losses.cuh), which the CuPy backend's elementwise
kernels call, against the registry and gpu_act/formulas.py.

- completeness: every function of gpu_act.formulas, so every registry entry
  (forward, derivative, gelu's tanh variant, rrelu, the prelu/leaky slope
  forms, the rrelu generator mix64/rrelu_slope) and the binary cross-entropy
  formulas (bce_logits_fwd/der, bce_fwd/der), has its C counterpart, and
  the table holds nothing else but a few named helpers;
- agreement, no GPU needed: the table compiled for the host with g++ (the
  same header nvcc compiles) and called through ctypes, on special values,
  against the independent reference (tests/reference.py, per-dtype
  tolerances) and, in float64, against the registry's Python formulas
  themselves to a few ulps with identical NaN and infinity positions.
"""

import ctypes
import inspect
import math
import re
import shutil
import subprocess

import numpy as np
import pytest
import reference as R
from helpers import OP_VARIANTS, op_id
from tolerances import assert_close

from gpu_act import _compile, kernels
from gpu_act import formulas as F
from gpu_act.registry import ACTIVATIONS

TABLE = kernels.text(kernels.ACTIVATIONS) + kernels.text(kernels.LOSSES)
C_NAMES = set(re.findall(r"GA_FN\s+[\w:]+\s+(\w+)\s*\(", TABLE))
HELPERS = {"py_max", "py_min", "is_inf", "quiet_nan"}  # Python builtins / math names / constants the formulas use
FORMULA_NAMES = {f.__name__ for f in _compile.FORMULAS}
GENERATOR = {F.mix64.__name__, F.rrelu_slope.__name__}
BCE = (F.bce_logits_fwd, F.bce_logits_der, F.bce_fwd, F.bce_der)


def _registry_functions():
    """Every scalar function a registry entry or the public API's prelu/rrelu paths run."""
    fns = {F.leaky_relu_slope_der, F.rrelu_slope, F.mix64}
    for act in ACTIVATIONS.values():
        fns |= {act.forward, act.derivative}
        for fwd, der in act.variants.values():
            fns |= {fwd, der}
    return fns


def test_every_registry_function_has_a_c_counterpart():
    missing = sorted(f.__name__ for f in _registry_functions() if f.__name__ not in C_NAMES)
    assert not missing, f"kernels/activations.cuh lacks C versions of: {missing}"


def test_the_c_table_mirrors_formulas_py_exactly():
    assert FORMULA_NAMES - C_NAMES == set(), f"formulas without C version: {sorted(FORMULA_NAMES - C_NAMES)}"
    extra = C_NAMES - FORMULA_NAMES - HELPERS
    assert extra == set(), f"C functions with no formula in gpu_act/formulas.py: {sorted(extra)}"


# ---------------------------------------------------------------- host build of the table
GXX = shutil.which("g++")
CT = {"float32": "float", "float64": "double"}


def _arity(name):
    return len(inspect.signature(getattr(F, name)).parameters)


def _host_source():
    lines = [kernels.source(kernels.LOSSES), 'extern "C" {']
    for name in sorted(FORMULA_NAMES - GENERATOR):
        extra = "".join(f", p[{k}]" for k in range(_arity(name) - 1))
        for c in CT.values():
            lines.append(
                f"void {name}_{c}(const {c}* x, {c}* y, long n, const {c}* p) "
                f"{{ for (long i = 0; i < n; ++i) y[i] = ga::{name}<{c}>(x[i]{extra}); }}"
            )
        lines.append("")
    # the binary cross-entropy formulas elementwise over arrays a[0], a[1], ... of their arguments
    for f in BCE:
        for c in CT.values():
            args = ", ".join(f"a[{k}][i]" for k in range(_arity(f.__name__)))
            lines.append(
                f"void {f.__name__}_v_{c}(const {c}* const* a, {c}* y, long n) "
                f"{{ for (long i = 0; i < n; ++i) y[i] = ga::{f.__name__}<{c}>({args}); }}"
            )
    lines.append(
        "void mix64_c(const unsigned long long* z, unsigned long long* y, long n) "
        "{ for (long i = 0; i < n; ++i) y[i] = ga::mix64(z[i]); }"
    )
    for c in CT.values():
        lines.append(
            f"void rrelu_slope_{c}(unsigned long long key, long n, {c} lower, {c} upper, {c}* y) "
            f"{{ for (long i = 0; i < n; ++i) y[i] = ({c})ga::rrelu_slope<{c}>(key, (unsigned long long)i, lower, upper); }}"
        )
    lines.append("}")
    return "\n".join(lines)


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    if GXX is None:
        pytest.skip("g++ is not on PATH: the host build of the C table needs a C++ compiler")
    d = tmp_path_factory.mktemp("ctable")
    src, so = d / "table.cpp", d / "table.so"
    src.write_text(_host_source())
    # no -ffast-math: NaN and infinities must behave as on the device
    r = subprocess.run([GXX, "-O2", "-std=c++17", "-shared", "-fPIC", "-Wall", "-Werror", "-o", str(so), str(src)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-4000:]
    return ctypes.CDLL(str(so))


def _call(lib, name, x, params):
    c = CT[x.dtype.name]
    y = np.empty_like(x)
    p = np.array(list(params) + [0.0], dtype=x.dtype)
    ptr = ctypes.POINTER(ctypes.c_float if c == "float" else ctypes.c_double)
    getattr(lib, f"{name}_{c}")(x.ctypes.data_as(ptr), y.ctypes.data_as(ptr), ctypes.c_long(x.size), p.ctypes.data_as(ptr))
    return y


SPECIAL = np.array(
    [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-300, -1e-300, 1e-40, -1e-40, 1e-8, -1e-8, 0.25, -0.25, 0.5, -0.5,
     1.0, -1.0, 2.0, -2.0, 3.0, -3.0, 2.9999999, -2.9999999, 3.0000001, -3.0000001, 5.0, 6.0, -6.0, 10.0, -10.0,
     19.5, 20.0, 20.5, -20.0, 30.0, -30.0, 50.0, -50.0, 88.0, -88.0, 100.0, -100.0, 700.0, -700.0, 710.0, -710.0,
     1e4, -1e4, 1e30, -1e30, 1e300, -1e300]
)


def _values(dtype):
    rng = np.random.default_rng(7)
    with np.errstate(over="ignore"):
        return np.concatenate([SPECIAL, rng.standard_normal(64) * 3, rng.standard_normal(32) * 30]).astype(dtype)


CASES = [(name, params) for name, params in OP_VARIANTS] + [("rrelu", {}), ("rrelu", {"lower": 0.05, "upper": 0.4})]


def _reference(name, x, params, der):
    if name == "rrelu":
        if der:
            return R.rrelu_backward(np.ones_like(x, dtype=np.float64), x, training=False, **params)
        return R.rrelu(x, training=False, **params)
    return (R.derivative if der else R.forward)(name, x, **params)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("der", [False, True], ids=["forward", "derivative"])
@pytest.mark.parametrize("name,params", CASES, ids=[op_id(n, p) for n, p in CASES])
def test_c_table_matches_reference(lib, name, params, der, dtype):
    act = ACTIVATIONS[name]
    fwd, d, kparams = act.kernels(act.bind(name, (), params, np.float64))
    x = _values(dtype)
    got = _call(lib, (d if der else fwd).__name__, x, kparams)
    assert_close(got, _reference(name, x, params, der), dtype, msg=f"C {(d if der else fwd).__name__}{kparams}")


def _python(fn, x, params):
    try:
        return fn(float(x), *params)
    except (OverflowError, ValueError):  # math raises where C gives inf; compared against the reference above
        return None


@pytest.mark.parametrize("der", [False, True], ids=["forward", "derivative"])
@pytest.mark.parametrize("name,params", CASES, ids=[op_id(n, p) for n, p in CASES])
def test_c_table_matches_python_formulas_in_float64(lib, name, params, der):
    act = ACTIVATIONS[name]
    fwd, d, kparams = act.kernels(act.bind(name, (), params, np.float64))
    fn = d if der else fwd
    x = _values("float64")
    got = _call(lib, fn.__name__, x, kparams)
    checked = 0
    for xi, gi in zip(x, got):
        want = _python(fn, xi, kparams)
        if want is None:
            continue
        checked += 1
        if math.isnan(want) or math.isinf(want):
            assert (math.isnan(gi) and math.isnan(want)) or gi == want, f"{fn.__name__}({xi!r}) = {gi!r}, Python {want!r}"
        else:
            assert abs(gi - want) <= 8 * np.spacing(abs(want)) + 1e-300, f"{fn.__name__}({xi!r}) = {gi!r}, Python {want!r}"
    assert checked > len(x) // 2


def test_slope_derivative_matches_reference(lib):
    x = _values("float64")
    got = _call(lib, F.leaky_relu_slope_der.__name__, x, (0.25,))
    want = np.array([R.prelu_backward(np.ones(1), np.array([v]), np.array([0.25]))[1][0] for v in x])
    assert_close(got, want, "float64")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_rrelu_generator_matches_reference(lib, dtype):
    z = np.array([0, 1, 2**63, 2**64 - 1, 12345678901234567], dtype=np.uint64)
    out = np.empty_like(z)
    p = ctypes.POINTER(ctypes.c_ulonglong)
    lib.mix64_c(z.ctypes.data_as(p), out.ctypes.data_as(p), ctypes.c_long(z.size))
    np.testing.assert_array_equal(out, R.mix64(z))
    c = CT[dtype]
    n, seed, lower, upper = 4096, 2024, 0.125, 1.0 / 3.0
    y = np.empty(n, dtype)
    ctyp = ctypes.c_float if c == "float" else ctypes.c_double
    getattr(lib, f"rrelu_slope_{c}")(ctypes.c_ulonglong(F.mix64(seed)), ctypes.c_long(n), ctyp(lower), ctyp(upper),
                                     y.ctypes.data_as(ctypes.POINTER(ctyp)))
    assert_close(y, R.rrelu_slopes((n,), lower, upper, True, seed), dtype)


# ---------------------------------------------------------------- binary cross-entropy (losses.cuh)
def _call_v(lib, fn, arrays):
    """C ``fn`` elementwise over ``arrays`` (its arguments, one dtype)."""
    c = CT[arrays[0].dtype.name]
    ctyp = ctypes.c_float if c == "float" else ctypes.c_double
    ptr = ctypes.POINTER(ctyp)
    arrays = [np.ascontiguousarray(a) for a in arrays]
    argv = (ptr * len(arrays))(*(a.ctypes.data_as(ptr) for a in arrays))
    y = np.empty_like(arrays[0])
    getattr(lib, f"{fn.__name__}_v_{c}")(argv, y.ctypes.data_as(ptr), ctypes.c_long(y.size))
    return y


LOGITS = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-8, -1e-8, 0.5, -0.5, 1.0, -1.0, 3.0, -3.0, 17.0, -17.0,
                   20.0, -20.0, 40.0, -40.0, 88.0, -88.0, 100.0, -100.0, 710.0, -710.0, 1e30, -1e30, 1e300, -1e300])
PROBS = np.array([np.nan, np.inf, -np.inf, -0.5, -1e-30, 1.5, 1.0 + 1e-7, 0.0, -0.0, 1.0, 1e-300, 1e-40, 1e-30,
                  1e-12, 1e-8, 1e-3, 0.25, 0.5, 0.75, 1 - 1e-3, 1 - 1e-8, 1 - 2.0**-24, 1 - 2.0**-53])
TARGETS = (0.0, 0.3, 1.0)
WEIGHTS = (1.0, 0.0, 2.5)
POS_WEIGHTS = (1.0, 0.5, 3.0)


def _bce_grid(logits, dtype, finite_zero_weight=False):
    """(z or p, t, w[, pw]) of every combination, in ``dtype``; ``finite_zero_weight``: a
    zero weight only at finite z (the reference's w * inf is NaN there, formulas.py's limit 0)."""
    x = LOGITS if logits else PROBS
    cols = [(xi, t, w) + ((pw,) if logits else ()) for xi in x for t in TARGETS for w in WEIGHTS
            for pw in (POS_WEIGHTS if logits else (None,))]
    with np.errstate(over="ignore"):
        args = [np.array(c).astype(dtype) for c in zip(*cols)]
    if finite_zero_weight:
        keep = np.isfinite(args[0]) | (args[2] != 0)
        args = [a[keep] for a in args]
    return args


@pytest.mark.parametrize("fn", BCE, ids=lambda f: f.__name__)
def test_bce_c_matches_python_formulas_in_float64(lib, fn):
    args = _bce_grid(fn.__name__.startswith("bce_logits"), "float64")
    got = _call_v(lib, fn, args)
    for k, gi in enumerate(got):
        want = fn(*(float(a[k]) for a in args))
        at = tuple(float(a[k]) for a in args)
        if math.isnan(want) or math.isinf(want):
            assert (math.isnan(gi) and math.isnan(want)) or gi == want, f"{fn.__name__}{at} = {gi!r}, Python {want!r}"
        else:
            assert abs(gi - want) <= 8 * np.spacing(abs(want)) + 1e-300, f"{fn.__name__}{at} = {gi!r}, Python {want!r}"


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("logits", [True, False], ids=["logits", "probs"])
def test_bce_c_matches_reference(lib, logits, dtype):
    args = _bce_grid(logits, dtype, finite_zero_weight=True)
    if logits:
        z, t, w, pw = args
        want_l, want_g = R.binary_cross_entropy_with_logits(z, t, w, pw, reduction="none")
        fwd, der = F.bce_logits_fwd, F.bce_logits_der
    else:
        z, t, w = args
        want_l, want_g = R.binary_cross_entropy(z, t, w, reduction="none")
        fwd, der = F.bce_fwd, F.bce_der
    assert_close(_call_v(lib, fwd, args), want_l, dtype, msg=f"C {fwd.__name__}")
    assert_close(_call_v(lib, der, args), want_g, dtype, msg=f"C {der.__name__}")
