"""stream= on the public API: rejected for host arrays, honoured by the GPU backends."""

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


@pytest.mark.gpu
@pytest.mark.parametrize("backend", ["cupy", "cuda"])
def test_stream_keyword_orders_work_on_that_stream(backend):
    if backend not in ga.available_backends():
        pytest.skip(f"backend {backend!r} not available")
    cp = pytest.importorskip("cupy")
    x_host = np.random.default_rng(0).standard_normal((512, 1000)).astype(np.float32)
    s = cp.cuda.Stream(non_blocking=True)
    with s:
        x = cp.asarray(x_host) * 1  # produced on s: the kernel must run after it, on s
    y = ga.softmax(x, backend=backend, stream=s)
    s.synchronize()
    assert_close(cp.asnumpy(y), ref.softmax(x_host), np.float32)
