"""Environments a user's machine may be: no writable cache directory.

Runs gpu_act in a fresh process, as a user would meet it."""

import subprocess
import sys
import textwrap

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


def run(script):
    r = subprocess.run([sys.executable, "-W", "always", "-c", textwrap.dedent(script)], capture_output=True, text=True)
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
