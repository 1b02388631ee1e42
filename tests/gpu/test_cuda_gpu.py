"""The CUDA backend on a real device (marked ``gpu``; skipped without one).

The op x dtype x variant matrix, CuPy and PyTorch inputs (results of the
input's kind, zero-copy, on its device), work on a non-default stream ordered
with the caller's other work, non-contiguous inputs, a 262,144-column row and
the special-value rules, all against the float64 reference.
"""

import importlib

import numpy as np
import pytest

import gpu_act as ga
from gpu_act import _cuda

import reference as ref
from helpers import OP_VARIANTS, op_id, sample
from tolerances import DTYPES, assert_close

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(_cuda.SIMULATOR or not _cuda.available(), reason="needs a CUDA device"),
]

cuda = _cuda.cuda
_config = importlib.import_module("gpu_act.backends.cuda._config")


def dev(a):
    return cuda.to_device(np.ascontiguousarray(a))


def host(r):
    return r.copy_to_host()


def variant(op, shape, dtype, axis=-1):
    n = shape[axis]
    c = 8 if np.dtype(dtype) == np.float64 else 4
    rows = int(np.prod(shape)) // n
    layout = _config.row_layout(np.empty(shape, dtype), axis)
    return _config.plan(op, rows, n, layout, c, _cuda.limits(0)).variant


# ---------------------------------------------------------------- elementwise matrix
@pytest.mark.parametrize("name,params", OP_VARIANTS, ids=[op_id(n, p) for n, p in OP_VARIANTS])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", ["flat", "strided"])
def test_elementwise_matrix(name, params, dtype, layout):
    x = sample((64, 33), dtype, seed=1)
    g = sample((64, 33), dtype, seed=2, kinks=False)
    view = (lambda a: a) if layout == "flat" else (lambda a: a.T[::-1])
    assert_close(host(getattr(ga, name)(view(dev(x)), **params)), ref.forward(name, view(x), **params), dtype)
    r = getattr(ga, name + "_backward")(view(dev(g)), view(dev(x)), **params)
    assert_close(host(r), ref.backward(name, view(g), view(x), **params), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_prelu_rrelu(dtype):
    x = sample((4, 3, 50), dtype, seed=3)
    g = sample((4, 3, 50), dtype, seed=4, kinks=False)
    w = np.array([0.1, -0.2, 0.3], dtype)
    assert_close(host(ga.prelu(dev(x), dev(w))), ref.prelu(x, w), dtype)
    gx, gw = ga.prelu_backward(dev(g), dev(x), dev(w))
    rgx, rgw = ref.prelu_backward(g, x, w)
    assert_close(host(gx), rgx, dtype)
    assert_close(host(gw), rgw, dtype)
    assert_close(host(ga.rrelu(dev(x), training=True, seed=5)), ref.rrelu(x, training=True, seed=5), dtype)


# ---------------------------------------------------------------- row-wise matrix
ROW_CASES = [
    ((300, 7), -1, "warp"),
    ((50, 1024), -1, "warp"),
    ((20, 1025), -1, "block-shared"),
    ((3, 20000), -1, "block"),
    ((64, 9, 33), 1, "thread"),
]


@pytest.mark.parametrize("shape,axis,expect", ROW_CASES, ids=[c[2] + str(c[0]) for c in ROW_CASES])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
def test_softmax_matrix(shape, axis, expect, dtype, log):
    if expect == "block-shared" or expect == "block":
        assert variant("softmax", shape, dtype, axis) in ("block-shared", "block")
    else:
        assert variant("softmax", shape, dtype, axis) == expect
    x = sample(shape, dtype, seed=6)
    g = sample(shape, dtype, seed=7, kinks=False)
    fwd, rfwd = (ga.log_softmax, ref.log_softmax) if log else (ga.softmax, ref.softmax)
    bwd, rbwd = (
        (ga.log_softmax_backward, ref.log_softmax_backward) if log else (ga.softmax_backward, ref.softmax_backward)
    )
    y = host(fwd(dev(x), axis=axis, temperature=1.3))
    assert_close(y, rfwd(x, axis=axis, temperature=1.3), dtype)
    assert_close(host(bwd(dev(g), dev(y), axis=axis, temperature=1.3)), rbwd(g, y, axis=axis, temperature=1.3), dtype)


@pytest.mark.parametrize("shape,axis,expect", ROW_CASES, ids=[c[2] + str(c[0]) for c in ROW_CASES])
@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_matrix(shape, axis, expect, dtype):
    z = sample(shape, dtype, seed=8)
    ax = axis % len(shape)
    t = np.random.default_rng(9).integers(0, shape[ax], shape[:ax] + shape[ax + 1 :])
    t.flat[::7] = -100
    loss, grad = ga.cross_entropy(dev(z), dev(t), axis, label_smoothing=0.1, return_grad=True)
    rl, rg = ref.cross_entropy(z, t, axis, label_smoothing=0.1)
    assert_close(host(loss), rl, dtype)
    assert_close(host(grad), rg, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_maxout(dtype):
    x = sample((40, 12, 6), dtype, seed=10)
    for axis in (-1, 1):
        y = ga.maxout(dev(x), 3, axis)
        assert_close(host(y), ref.maxout(x, 3, axis), dtype)
        g = sample(host(y).shape, dtype, seed=11, kinks=False)
        assert_close(host(ga.maxout_backward(dev(g), dev(x), 3, axis)), ref.maxout_backward(g, x, 3, axis), dtype)


def test_long_row_262144_columns():
    x = sample((2, 262144), np.float32, seed=12)
    assert variant("softmax", x.shape, np.float32) == "block"
    assert_close(host(ga.softmax(dev(x))), ref.softmax(x), np.float32)
    assert_close(host(ga.log_softmax(dev(x))), ref.log_softmax(x), np.float32)
    t = np.array([5, 262143])
    loss, grad = ga.cross_entropy(dev(x), dev(t), return_grad=True)
    rl, rg = ref.cross_entropy(x, t)
    assert_close(host(loss), rl, np.float32)
    assert_close(host(grad), rg, np.float32)


SPECIAL = np.array(
    [
        [1.0, np.nan, 2.0, 3.0],
        [1.0, np.inf, 2.0, 3.0],
        [-np.inf] * 4,
        [-np.inf, 1.0, -np.inf, 2.0],
        [-1e30, 1e30, 0.0, 5.0],
    ]
)


@pytest.mark.parametrize("width", [4, 2000, 40000])
@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_special_values(width, dtype):
    x = np.tile(SPECIAL, (1, width // 4)).astype(dtype)
    for fwd, rfwd in ((ga.softmax, ref.softmax), (ga.log_softmax, ref.log_softmax)):
        assert_close(host(fwd(dev(x))), rfwd(x), dtype)
        assert_close(host(fwd(dev(x.T.copy()), axis=0)), rfwd(x.T, axis=0), dtype)


def test_elementwise_special_values():
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e30, -1e30], np.float32)
    for name, params in OP_VARIANTS:
        assert_close(host(getattr(ga, name)(dev(x), **params)), ref.forward(name, x, **params), np.float32)
        assert_close(
            host(getattr(ga, name + "_backward")(dev(np.ones_like(x)), dev(x), **params)),
            ref.backward(name, np.ones_like(x), x, **params),
            np.float32,
        )


# ---------------------------------------------------------------- array kinds and streams
def test_cupy_input_gives_cupy_output_on_its_stream():
    cupy = pytest.importorskip("cupy")
    x = sample((256, 300), np.float32, seed=13)
    with cupy.cuda.Stream(non_blocking=True) as s:
        cx = cupy.asarray(x)  # enqueued on s
        y = ga.softmax(cx, backend="cuda")  # must be ordered after the copy on s
        z = ga.gelu(cupy.asfortranarray(cx), backend="cuda")
        s.synchronize()
    assert isinstance(y, cupy.ndarray) and y.device.id == cx.device.id
    assert_close(y.get(), ref.softmax(x), np.float32)
    assert_close(z.get(), ref.forward("gelu", x), np.float32)


def test_torch_input_gives_torch_output_on_current_stream():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("PyTorch without CUDA")
    x = sample((128, 513), np.float32, seed=14)
    s = torch.cuda.Stream()
    with torch.cuda.stream(s):
        tx = torch.from_numpy(x).cuda(non_blocking=True).requires_grad_(True)
        ty = ga.log_softmax(tx)
        tz = ga.silu(tx.t())  # non-contiguous
    s.synchronize()
    assert isinstance(ty, torch.Tensor) and ty.device == tx.device
    assert_close(ty.cpu().numpy(), ref.log_softmax(x), np.float32)
    assert_close(tz.cpu().numpy(), ref.forward("silu", x.T), np.float32)
    # zero-copy: out= is a view of the caller's tensor
    out = torch.empty_like(tx.detach())
    r = ga.relu(tx, out=out)
    torch.cuda.synchronize()
    assert r is out and out.data_ptr() == r.data_ptr()


def test_numba_stream_of_the_input_orders_the_work():
    x = sample((4096, 256), np.float32, seed=15)
    s = cuda.stream()
    d = cuda.to_device(x, stream=s)  # the array carries stream s
    y = ga.softmax(d)
    assert_close(y.copy_to_host(stream=s), ref.softmax(x), np.float32)
    s.synchronize()


# ---------------------------------------------------------------- bfloat16
def _bf16():
    return np.dtype(pytest.importorskip("ml_dtypes").bfloat16)


def test_numba_bfloat16_device_arrays():
    # a Numba device array of ml_dtypes' bfloat16 (cuda.to_device of a NumPy bfloat16 array)
    bf = _bf16()
    x = sample((64, 1500), np.float64, seed=16).astype(bf)
    y = ga.silu(dev(x))
    assert np.dtype(y.dtype) == bf
    assert_close(host(y), ref.forward("silu", x.astype(np.float64)), bf)
    assert_close(host(ga.log_softmax(dev(x))), ref.log_softmax(x.astype(np.float64)), bf)


def test_torch_bfloat16_tensors():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("PyTorch without CUDA")
    bf = _bf16()

    def tensor(a):  # a bfloat16 CUDA tensor holding exactly a's values
        return torch.from_numpy(np.ascontiguousarray(a, np.float32)).cuda().to(torch.bfloat16)

    def back(t):
        assert isinstance(t, torch.Tensor) and t.dtype == torch.bfloat16 and t.is_cuda
        return t.float().cpu().numpy().astype(bf)

    f64 = lambda a: np.asarray(a).astype(np.float64)  # noqa: E731
    for shape, axis in (((300, 7), -1), ((20, 1500), -1), ((3, 20000), -1), ((64, 9, 33), 1)):
        x = sample(shape, np.float64, seed=17).astype(bf)
        g = sample(shape, np.float64, seed=18, kinks=False).astype(bf)
        tx, tg = tensor(x), tensor(g)
        assert_close(back(ga.gelu(tx)), ref.forward("gelu", f64(x)), bf)
        assert_close(back(ga.gelu_backward(tg.transpose(0, -1), tx.transpose(0, -1))),
                     ref.backward("gelu", f64(g).swapaxes(0, -1), f64(x).swapaxes(0, -1)), bf)
        y = ga.softmax(tx, axis)
        assert_close(back(y), ref.softmax(f64(x), axis), bf)
        assert_close(back(ga.softmax_backward(tg, y, axis)), ref.softmax_backward(f64(g), f64(back(y)), axis), bf)
        ax = axis % len(shape)
        t = np.random.default_rng(19).integers(0, shape[ax], shape[:ax] + shape[ax + 1 :])
        t.flat[::7] = -100
        loss, grad = ga.cross_entropy(tx, torch.from_numpy(t).cuda(), axis, label_smoothing=0.1, return_grad=True)
        rl, rg = ref.cross_entropy(f64(x), t, axis, label_smoothing=0.1)
        assert_close(back(loss), rl, bf)
        assert_close(back(grad), rg, bf)
    z = sample((40, 12), np.float64, seed=20).astype(bf)
    p = np.random.default_rng(21).random((40, 12)).astype(bf)
    loss, grad = ga.binary_cross_entropy_with_logits(tensor(z), tensor(p), pos_weight=tensor(p[0]), return_grad=True)
    rl, rg = ref.binary_cross_entropy_with_logits(f64(z), f64(p), pos_weight=f64(p[0]))
    assert_close(back(loss), rl, bf)
    assert_close(back(grad), rg, bf)
    assert_close(back(ga.maxout(tensor(z), 3)), ref.maxout(f64(z), 3), bf)
    w = np.linspace(-0.3, 0.3, 12).astype(bf)
    gx, gw = ga.prelu_backward(tensor(p), tensor(z), tensor(w))
    rgx, rgw = ref.prelu_backward(f64(p), f64(z), f64(w))
    assert_close(back(gx), rgx, bf)
    assert_close(back(gw), rgw, bf)
