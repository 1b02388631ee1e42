"""Environments a user's machine may be: no writable cache directory; a process
forked after a parallel call.

Runs gpu_act in a fresh process, as a user would meet it."""

import subprocess
import sys
import textwrap

import pytest

# Numba finds no cache location: NUMBA_CACHE_DIR, the __pycache__ beside the
# sources and the user's cache directory all unwritable (a read-only install
# run by another user, as ``docker run --user``). Root writes everywhere, so
# the locators are emptied instead, in Numba and in numba-cuda alike.
NO_CACHE = """
import importlib
for name in ("numba.core.caching", "numba.cuda.core.caching"):
    try:
        mod = importlib.import_module(name)
    except ImportError:
        continue
    for cls in vars(mod).values():
        if isinstance(cls, type) and "_locator_classes" in vars(cls):
            cls._locator_classes = []
"""


def run(script, timeout=None):
    r = subprocess.run(
        [sys.executable, "-W", "always", "-c", textwrap.dedent(script)], capture_output=True, text=True, timeout=timeout
    )
    # no test runs in a process that already imported gpu_act: each starts its own
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def test_no_writable_cache_works_and_says_so_once():
    r = run(
        NO_CACHE
        + textwrap.dedent("""
        import numpy as np
        import gpu_act as ga
        assert ga.available_backends()[0] == "cpu"
        x = np.linspace(-3, 3, 7)
        assert np.allclose(ga.relu(x), np.maximum(x, 0))
        assert np.allclose(ga.softmax(x).sum(), 1.0)
        assert np.allclose(ga.maxout(x[:6], 2), [-2, 0, 2])
        try:  # the CUDA kernels are built (not run: no GPU needed) without a disk cache too
            import importlib
            sm = importlib.import_module("gpu_act.backends.cuda.softmax")
        except ImportError:
            pass
        else:
            assert type(sm.kernel("forward", np.float32, "block")._cache).__name__ == "NullCache"
        """)
    )
    assert r.stderr.count("gpu_act: Numba has no writable cache directory") == 1, r.stderr
    assert "NUMBA_CACHE_DIR" in r.stderr


def test_writable_cache_is_used_silently():
    r = run(
        """
        import numpy as np
        import gpu_act as ga
        from gpu_act import _compile
        assert np.allclose(ga.relu(np.arange(-2.0, 3.0)), [0, 0, 0, 1, 2])
        assert _compile.disk_cache()
        try:  # CUDA kernels are cached on disk too (numba-cuda's file cache)
            import importlib
            sm = importlib.import_module("gpu_act.backends.cuda.softmax")
        except ImportError:
            pass
        else:
            assert type(sm.kernel("forward", np.float32, "block")._cache).__name__ == "CUDACache"
        """
    )
    assert "cache directory" not in r.stderr, r.stderr


# Parent and children each make calls large enough for the parallel kernels
# (``PARALLEL_MIN`` elements and up): under GNU OpenMP a child forked after the
# parent's parallel region is killed by Numba, or hangs in a Pool, unless it
# runs serial.
FORK = """
import multiprocessing, os
import numpy as np
import gpu_act as ga
from gpu_act.backends.cpu import _kernels

x = np.linspace(-4, 4, 4 * _kernels.PARALLEL_MIN, dtype=np.float32).reshape(64, -1)
def work(i):
    return float(ga.softmax(x * i).sum()), float(ga.silu(x).sum())
parent = work(1)
import numba
layer = numba.threading_layer()
"""


def _fork_works(script):
    r = run(FORK + textwrap.dedent(script), timeout=240)
    assert "OK" in r.stdout, r.stdout + r.stderr
    return r


@pytest.mark.skipif(sys.platform != "linux", reason="the fork start method is Linux's default")
def test_fork_pool_after_a_parallel_call():
    _fork_works("""
        with multiprocessing.get_context("fork").Pool(2) as pool:
            res = pool.map(work, [1, 2, 3])
        assert np.allclose([r[0] for r in res], 64), res
        assert all(np.isclose(r[1], parent[1]) for r in res), (res, parent)
        print("OK", layer)
        """)


@pytest.mark.skipif(sys.platform != "linux", reason="os.fork")
def test_forked_child_runs_serial_under_gnu_openmp_and_parallel_otherwise():
    _fork_works("""
        from gpu_act.backends.cpu import _numba
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            ok = work(2)[0] == parent[0] and (_kernels.decorator(x.size) is _numba.kernel_jit) == (layer == "omp")
            os.write(w, b"1" if ok else b"0")
            os._exit(0)
        os.close(w)
        got = os.read(r, 1)
        _, status = os.waitpid(pid, 0)
        assert status == 0 and got == b"1", (status, got, layer)
        assert _kernels.decorator(x.size) is _numba.kernel_pjit  # the parent keeps its threads
        print("OK", layer)
        """)
