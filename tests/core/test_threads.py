"""Concurrent calls from several Python threads give correct results."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

import gpu_act as ga
import reference as ref
from helpers import sample
from tolerances import assert_close

N_THREADS = 8
N_CALLS = 12


def _work(i):
    """Each task uses its own arrays, dtype, shape and axis; returns (got, expected) pairs."""
    dtype = (np.float32, np.float64, np.float16)[i % 3]
    rng_seed = 1000 + i
    shape = (17 + i, 31 + 2 * i)
    x = sample(shape, dtype, seed=rng_seed)
    g = sample(shape, dtype, seed=rng_seed + 1, kinks=False)
    axis = i % 2
    results = []
    for k in range(N_CALLS):
        t = 1.0 + 0.25 * (k % 3)
        results.append((ga.softmax(x, axis=axis, temperature=t),
                        ref.softmax(x, axis=axis, temperature=t), dtype))
        results.append((ga.gelu(x), ref.forward("gelu", x), dtype))
        results.append((ga.gelu_backward(g, x, approximate="tanh"),
                        ref.backward("gelu", g, x, approximate="tanh"), dtype))
        out = np.empty_like(x)
        ga.log_softmax(x, axis=1 - axis, out=out)
        results.append((out, ref.log_softmax(x, axis=1 - axis), dtype))
    return results


def test_concurrent_softmax_and_gelu():
    barrier = threading.Barrier(N_THREADS)

    def task(i):
        barrier.wait()  # start together to maximise overlap (incl. first-call compilation)
        return _work(i)

    with ThreadPoolExecutor(max_workers=N_THREADS) as pool:
        all_results = list(pool.map(task, range(N_THREADS)))
    checked = 0
    for results in all_results:
        for got, expected, dtype in results:
            assert got.dtype == dtype
            assert_close(got, expected, dtype)
            checked += 1
    assert checked == N_THREADS * N_CALLS * 4


def test_concurrent_same_input_same_output():
    """Many threads on one shared read-only input, each writing its own out."""
    x = sample((257, 129), np.float32, seed=7)
    expected = ref.softmax(x, axis=0)
    outs = [np.empty_like(x) for _ in range(N_THREADS * 4)]

    def task(k):
        ga.softmax(x, axis=0, out=outs[k])
        return ga.silu(x)

    with ThreadPoolExecutor(max_workers=N_THREADS) as pool:
        silus = list(pool.map(task, range(len(outs))))
    for o in outs:
        assert_close(o, expected, np.float32)
        np.testing.assert_array_equal(o, outs[0])
    for s in silus:
        np.testing.assert_array_equal(s, silus[0])
    assert_close(silus[0], ref.forward("silu", x), np.float32)
