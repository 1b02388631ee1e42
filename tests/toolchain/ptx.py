"""What the Numba CUDA kernels' PTX tests share: the argument types the
backend launches kernels with (1-D views of each operand plus int64 offsets
and UniTuple(int64, 2) strides, ``_operands``), and ``assert_ptx``, which
compiles a kernel once (``cc_for``: kernels computing in float64, the
register-heaviest, for sm_80, the others for sm_90, so both architectures are
covered) and checks that it fits the launch ``_config`` gives it (ptxas -v,
``resources.py``): registers x the most threads of its variant <= 65,536,
static shared memory within ``_config.STATIC_SHARED``, no spills, a launch
bound that admits its block.
"""

import importlib

import numpy as np

from gpu_act import _cuda

import resources

T = _cuda.types  # the target's own types (numba-cuda-mlir takes no numba.types)
from_dtype = _cuda.from_dtype
I64 = T.int64
TUP = T.UniTuple(I64, 2)  # a merged outer shape (or its strides) of rank 2
_config = importlib.import_module("gpu_act.backends.cuda._config")


def arr(dtype):
    return T.Array(from_dtype(np.dtype(dtype)), 1, "C")


def compute(dtype):
    return np.dtype(np.float64 if np.dtype(dtype) == np.float64 else np.float32)


def scalar(dtype):
    return from_dtype(compute(dtype))


def row_op(dtype):
    """(view, offset, outer strides, axis stride) of a row operand."""
    return (arr(dtype), I64, TUP, I64)


def cc_for(ctype):
    """The cc a kernel computing in ``ctype`` is compiled for."""
    return (8, 0) if np.dtype(ctype) == np.float64 else (9, 0)


def assert_fits(ptx, arch, variant, ctype):
    """ptxas's resources of the one kernel in ``ptx`` for sm_``arch``, asserted
    to fit blocks of the most threads ``_config`` launches ``variant`` with."""
    threads = _config.max_threads(variant, np.dtype(ctype).itemsize)
    ((name, r),) = resources.ptx_resources(ptx, arch).items()
    where = f"{variant} kernel on sm_{arch} ({r})"
    assert resources.registers_for_block(r.registers, threads) <= resources.REGISTERS_PER_SM, where
    assert r.static_shared <= _config.STATIC_SHARED, where
    assert r.spill_stores == r.spill_loads == 0, where
    if r.max_threads is not None:
        assert r.max_threads >= threads, where
    return r


def assert_ptx(kernel, sig, variant, ctype):
    """(PTX for the kernel's cc, ``cc_for(ctype)``; its resources, None without
    ptxas), the kernel fitting blocks of the most threads ``_config`` launches
    ``variant`` with for compute type ``ctype``."""
    cc = cc_for(ctype)
    ptx = _cuda.compile_ptx(kernel, sig, cc)
    assert f".target sm_{cc[0]}{cc[1]}" in ptx
    assert ".entry" in ptx
    r = assert_fits(ptx, f"{cc[0]}{cc[1]}", variant, ctype) if resources.ptxas_path() else None
    return ptx, r
