"""The CPU's vectorizable exp, expm1, log1p, tanh, erfc (gpu_act/backends/cpu/_vmath.py).

Accuracy in ulps against mpmath-grade references (NumPy float64, or mpmath for
erfc where SciPy's float64 erfc is itself off by ~x^2 ulps), the special values,
the compute dtype being kept, and LLVM vectorizing a loop over each function.
"""

import numba
import numpy as np
import pytest
from numba import njit

from gpu_act._compile import instantiate
from gpu_act.backends.cpu import _vmath

mpmath = pytest.importorskip("mpmath")

NAMES = ("exp", "expm1", "log1p", "tanh", "erfc")
MAX_ULP = {np.float32: 4.0, np.float64: 4.0}
# erfc multiplies rounded factors: float32's one branch e^{-a^2} u G with u = 1/(a + K)
# (measured on every float32 from 1e-3 to 9.19 against SciPy: max 5.8 ulp, at 1.106);
# float64's e^{-a^2} E(t)/(1 + 2a) (worst found: 4.73 ulp, at 12.364945; the tests count
# ulps from the rounded reference, up to half an ulp more). Still 1/55 of float32's test
# tolerance.
MAX_ULP_ERFC = {np.float32: 6.0, np.float64: 5.5}
SPECIAL = {
    "exp": [(np.inf, np.inf), (-np.inf, 0.0), (1000.0, np.inf), (-1000.0, 0.0), (0.0, 1.0)],
    "expm1": [(np.inf, np.inf), (-np.inf, -1.0), (1000.0, np.inf), (-0.0, -0.0), (0.0, 0.0)],
    "log1p": [(np.inf, np.inf), (-1.0, -np.inf), (-2.0, np.nan), (0.0, 0.0), (-np.inf, np.nan)],
    "tanh": [(np.inf, 1.0), (-np.inf, -1.0), (-0.0, -0.0), (50.0, 1.0)],
    "erfc": [(np.inf, 0.0), (-np.inf, 2.0), (0.0, 1.0), (30.0, 0.0)],
}


def _loop(x, out):
    for i in range(x.shape[0]):
        out[i] = _f(x[i])  # noqa: F821


def _kernel(name, dtype, native_ldexp=None):
    f = _vmath.functions(dtype, native_ldexp)[name]
    tag = f"test_vmath.{name}.{np.dtype(dtype).name}.{native_ldexp}"
    return instantiate(_loop, {"_f": f}, tag, lambda g: njit(g, error_model="numpy"), dtype)


# 2^n scaling: this CPU's choice, and the exponent-bits version CPUs without AVX-512 get
SCALINGS = pytest.mark.parametrize("native_ldexp", [None, False], ids=["host", "bits"])


def _mp_reference(name, x):
    mpmath.mp.dps = 30
    f = getattr(mpmath, name)
    return np.array([float(f(mpmath.mpf(float(v)))) for v in x])


def _reference(name, x):
    if name == "erfc":
        return _mp_reference(name, x)
    return {"exp": np.exp, "expm1": np.expm1, "log1p": np.log1p, "tanh": np.tanh}[name](x.astype(np.float64))


def _points(name, dtype, n):
    rng = np.random.default_rng(7)
    # erfc up to where float64's rounds to 0 (float32's results beyond ~9.2 are subnormal: not counted)
    lo, hi = {"exp": (-80, 80), "expm1": (-30, 80), "log1p": (-0.999, 1e6), "tanh": (-12, 12), "erfc": (-6, 27)}[name]
    x = np.concatenate([rng.uniform(lo, hi, n), rng.uniform(-1, 1, n) * 10.0 ** rng.uniform(-10, 0, n)])
    return x[(x > lo) & (x < hi)].astype(dtype)


@SCALINGS
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", NAMES)
def test_accuracy_in_ulps(name, dtype, native_ldexp):
    x = _points(name, dtype, 2500 if name == "erfc" else 20000)
    k = _kernel(name, dtype, native_ldexp)
    out = np.empty_like(x)
    k(x, out)
    ref = _reference(name, x)
    normal = np.abs(ref) >= np.finfo(dtype).tiny
    ulp = np.spacing(np.abs(ref[normal]).astype(dtype)).astype(np.float64)
    err = np.abs(out[normal].astype(np.float64) - ref[normal]) / ulp
    bound = MAX_ULP_ERFC[dtype] if name == "erfc" else MAX_ULP[dtype]
    assert err.max() <= bound, f"{name} {np.dtype(dtype).name}: {err.max():.2f} ulp at x={x[normal][err.argmax()]!r}"


@SCALINGS
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", NAMES)
def test_special_values(name, dtype, native_ldexp):
    cases = SPECIAL[name] + [(np.nan, np.nan)]
    x = np.array([c[0] for c in cases], dtype)
    want = np.array([c[1] for c in cases], dtype)
    out = np.empty_like(x)
    _kernel(name, dtype, native_ldexp)(x, out)
    np.testing.assert_array_equal(out, want)
    num = ~np.isnan(want)
    assert np.array_equal(np.signbit(out[num]), np.signbit(want[num])), f"{name}: signs {out} vs {want}"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compute_dtype_is_kept(dtype):
    # a float32 version that promoted to float64 inside would be slower and mistyped
    for name in NAMES:
        f = _vmath.functions(dtype)[name]
        f.compile((numba.typeof(dtype(0.5)),))  # a device function: compiled, not called from Python
        assert [s.return_type.name for s in f.nopython_signatures] == [np.dtype(dtype).name], name


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", NAMES)
def test_loop_vectorizes(name, dtype):
    k = _kernel(name, dtype)
    x = np.ones(64, dtype)
    k(x, np.empty_like(x))
    asm = k.inspect_asm(k.signatures[0])
    packed = "ps" if dtype == np.float32 else "pd"
    assert any(f"v{op}{packed}" in asm for op in ("fmadd", "mul", "add")) and ("ymm" in asm or "zmm" in asm), (
        f"no packed {packed} arithmetic in the loop over {name}"
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_key_orders_like_the_floats(dtype):
    fs = _vmath.functions(dtype)
    key_of, value_of = fs["max_key"], fs["from_max_key"]  # device functions: called from compiled code

    @numba.njit
    def keys_and_back(x):
        keys = [key_of(v) for v in x]
        return keys, [value_of(k) for k in keys]

    x = np.array([-np.inf, -3.5, -1e-30, -0.0, 0.0, 1e-30, 2.0, np.inf, np.nan], dtype)
    keys, back = keys_and_back(x)
    keys, back = keys[:-1], np.array(back[:-1], dtype)
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    assert np.array_equal(back, x[:-1]) and np.array_equal(np.signbit(back), np.signbit(x[:-1]))
    nan_key, inf_key = keys_and_back(x[-1:])[0][0], keys[-1]
    assert nan_key > inf_key  # a default NaN wins a row max


def _subnormal_run(name, dtype, native_ldexp, lo, hi, n):
    # (x, result, mpmath reference) on n points from lo to hi: NumPy's float64 functions
    # round subnormal float64 results themselves
    x = np.linspace(lo, hi, n).astype(dtype)
    out = np.empty_like(x)
    _kernel(name, dtype, native_ldexp)(x, out)
    return x, out, _mp_reference(name, x)


@SCALINGS
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_exp_subnormal_results(dtype, native_ldexp):
    # e^x below the smallest normal float: within one subnormal step of the rounded value
    lo, hi = {np.float32: (-103.9, -87.4), np.float64: (-745.1, -708.4)}[dtype]
    _, out, ref = _subnormal_run("exp", dtype, native_ldexp, lo, hi, 3001)
    step = np.finfo(dtype).smallest_subnormal
    assert np.all(np.abs(out.astype(np.float64) - ref) <= step), f"{np.abs(out - ref).max() / step} steps"
    assert out[0] == 0 or out[0] <= 2 * step and out[-1] > 0


@SCALINGS
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_erfc_subnormal_tail_rounds_to_zero(dtype, native_ldexp):
    # erfc clamps its argument at ERFC_HI and relies on the result rounding to 0 there:
    # through the subnormal tail and past the clamp, within one subnormal step (plus
    # the relative error allowed above, for the larger subnormals)
    lo, hi = {np.float32: (9.21, 10.6), np.float64: (26.56, 27.8)}[dtype]
    _, out, ref = _subnormal_run("erfc", dtype, native_ldexp, lo, hi, 1001)
    step = np.finfo(dtype).smallest_subnormal
    bound = step + MAX_ULP_ERFC[dtype] * np.finfo(dtype).eps * ref
    assert np.all(np.abs(out.astype(np.float64) - ref) <= bound), f"{np.abs(out - ref).max() / step} steps"
    assert 0 < out[0] < np.finfo(dtype).tiny and out[-1] == 0
