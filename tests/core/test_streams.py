"""stream= on the public API: rejected for host arrays, honoured by the GPU
backends; the stream a call runs on, and what it waits for."""

import functools
import inspect

import numpy as np
import pytest

import gpu_act as ga
from tolerances import assert_close
import reference as ref


def test_every_public_function_takes_stream():
    for name in ga.__all__:
        fn = getattr(ga, name)
        if callable(fn) and name not in ("available_backends", "BackendUnavailableError"):
            assert "stream" in inspect.signature(fn).parameters, name


@pytest.mark.parametrize("call", [
    lambda s: ga.softmax(np.ones(3), stream=s),
    lambda s: ga.gelu(np.ones(3), stream=s),
    lambda s: ga.cross_entropy(np.ones((2, 3)), np.zeros(2, np.int64), stream=s),
])
def test_stream_on_host_arrays_is_an_error(call):
    with pytest.raises(ValueError, match="stream= is for the GPU backends"):
        call(object())
    # and the next call without stream= is unaffected
    assert np.allclose(ga.softmax(np.zeros(4)), 0.25)


# ---------------------------------------------------------------- ordering, made deterministic
# Each test queues a slow producer first (a kernel that sleeps ~200 ms, then
# writes the input) on a non-blocking stream and calls gpu_act at once, with
# no host synchronisation: work launched on any other stream would read the
# input before it is written (it starts out as NaN), and fail. The call is
# made once beforehand, so that compiling its kernels does not outlast the
# producer, and the producer is checked to be still running when it returns.
SLEEP_NS = 200_000_000


@functools.cache
def _slow_copy_kernel():
    from gpu_act import _cuda

    cuda = _cuda.cuda

    @cuda.jit
    def slow_copy(dst, src, ms):
        for _ in range(ms):
            cuda.nanosleep(1_000_000)
        i = cuda.grid(1)
        if i < dst.size:
            dst.reshape(dst.size)[i] = src.reshape(src.size)[i]

    return slow_copy


def _produce(dst, src, handle):
    """dst[...] = src on the stream with CUstream ``handle``, ~200 ms from now;
    returns an event that completes with the copy."""
    from gpu_act import _cuda

    stream = _cuda.cuda.external_stream(handle)
    n = dst.size
    k = _slow_copy_kernel()
    k[(n + 255) // 256, 256, stream](dst, src, 0)  # compiled and loaded before the timed launch
    stream.synchronize()
    k[(n + 255) // 256, 256, stream](dst, src, SLEEP_NS // 1_000_000)
    done = _cuda.cuda.event(timing=False)
    done.record(stream=stream)
    return done


def _still_running(done):
    assert not done.query(), "the producer finished before gpu_act's call returned: the test proves nothing"


def _x(shape=(64, 300), seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.mark.gpu
@pytest.mark.parametrize("backend", ["cupy", "cuda"])
def test_cupy_current_stream_orders_the_call(backend):
    if backend not in ga.available_backends():
        pytest.skip(f"backend {backend!r} not available")
    cp = pytest.importorskip("cupy")
    host = _x()
    s = cp.cuda.Stream(non_blocking=True)
    with s:
        x = cp.full(host.shape, cp.nan, cp.float32)
        src = cp.asarray(host)
        ga.softmax(src, backend=backend)  # warm: kernels compiled and loaded
        s.synchronize()
        done = _produce(x, src, s.ptr)
        y = ga.softmax(x, backend=backend)  # CuPy's current stream is s
        _still_running(done)
    s.synchronize()
    assert_close(cp.asnumpy(y), ref.softmax(host), np.float32)


@pytest.mark.gpu
@pytest.mark.parametrize("backend", ["cupy", "cuda"])
def test_stream_keyword_orders_the_call(backend):
    if backend not in ga.available_backends():
        pytest.skip(f"backend {backend!r} not available")
    cp = pytest.importorskip("cupy")
    host = _x(seed=1)
    s = cp.cuda.Stream(non_blocking=True)
    with s:
        x = cp.full(host.shape, cp.nan, cp.float32)
        src = cp.asarray(host)
    s.synchronize()
    ga.log_softmax(src, backend=backend, stream=s)  # warm
    s.synchronize()
    done = _produce(x, src, s.ptr)
    y = ga.log_softmax(x, backend=backend, stream=s)  # called outside s's context
    _still_running(done)
    s.synchronize()
    assert_close(cp.asnumpy(y), ref.log_softmax(host), np.float32)


@pytest.mark.gpu
def test_numba_array_stream_orders_the_call_and_other_inputs_are_waited_for():
    if "cuda" not in ga.available_backends():
        pytest.skip("backend 'cuda' not available")
    from gpu_act import _cuda

    cuda = _cuda.cuda
    g_host, y_host = _x(seed=2), ref.softmax(_x(seed=3)).astype(np.float32)
    s1, s2 = cuda.stream(), cuda.stream()
    g = cuda.to_device(np.full(g_host.shape, np.nan, np.float32), stream=s1)
    y = cuda.to_device(np.full(y_host.shape, np.nan, np.float32), stream=s2)
    g_src, y_src = cuda.to_device(g_host), cuda.to_device(y_host)
    ga.softmax_backward(g_src, y_src)  # warm
    cuda.synchronize()
    done = _produce(g, g_src, int(s1.handle))  # g is written on s1, y on s2: the call runs on y's stream
    _produce(y, y_src, int(s2.handle))
    dx = ga.softmax_backward(g, y)  # and waits for s1 there
    _still_running(done)
    assert_close(dx.copy_to_host(stream=s2), ref.softmax_backward(g_host, y_host), np.float32)
    s2.synchronize()


@pytest.mark.gpu
def test_torch_current_stream_orders_the_call():
    if "cuda" not in ga.available_backends():
        pytest.skip("backend 'cuda' not available")
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("PyTorch without CUDA")
    host = _x(seed=4)
    src = torch.from_numpy(host).cuda()
    ga.softmax(src)  # warm
    s = torch.cuda.Stream()
    torch.cuda.synchronize()
    with torch.cuda.stream(s):
        torch.cuda._sleep(400_000_000)  # cycles: ~200 ms on the producer stream
        x = src * 1.0
        done = s.record_event()
        y = ga.softmax(x)
        assert not done.query(), "the producer finished before gpu_act's call returned"
    s.synchronize()
    assert_close(y.cpu().numpy(), ref.softmax(host), np.float32)


@pytest.mark.gpu
def test_outputs_are_allocated_on_the_launch_stream(monkeypatch):
    # stream-ordered allocators reuse freed memory by stream: the output must
    # belong to the stream the kernels write it on
    if "cuda" not in ga.available_backends():
        pytest.skip("backend 'cuda' not available")
    cp = pytest.importorskip("cupy")
    seen = []
    real = cp.empty

    def spy(*a, **k):
        seen.append(cp.cuda.get_current_stream().ptr)
        return real(*a, **k)

    s = cp.cuda.Stream(non_blocking=True)
    x = cp.asarray(_x(seed=5))
    monkeypatch.setattr(cp, "empty", spy)
    ga.softmax(x, backend="cuda", stream=s)
    ga.softmax(x, backend="cupy", stream=s)
    s.synchronize()
    assert seen and all(p == s.ptr for p in seen), (seen, s.ptr)
