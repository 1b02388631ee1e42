"""Compile-time resources of CUDA kernels, without a GPU.

- ``ptx_resources(ptx, arch)``: ptxas -v on a PTX text, per entry: registers,
  static shared memory, stack frame, spill stores/loads, and the
  ``.maxntid``/``.reqntid`` block limit when the PTX carries one
  (``__launch_bounds__``);
- ``cupy_compile(...)``: a source compiled by CuPy's own NVRTC path
  (``cupy._core.core.compile_with_cache``, what ``RawModule`` and
  ``ElementwiseKernel`` call) with an explicit arch, to a cubin (CuPy's
  default) or to PTX (CuPy's ``CUPY_COMPILE_WITH_PTX=1`` mode);
- ``cupy_module_resources(...)``: the two together for a RawModule: its
  name expressions mapped to the resources of their kernels.

The CuPy compile path runs unchanged except for three device-bound pieces,
replaced only while a compile runs (``_offline``):
- ``compiler._get_arch_for_options_for_nvrtc`` is memoized per device (it
  calls cudaGetDevice); its undecorated function is called instead, with the
  arch given explicitly (so ``_get_arch``, the device query, never runs);
  for PTX it returns what CuPy returns under CUPY_COMPILE_WITH_PTX=1
  (``-arch=compute_XX``, "ptx"), per thread instead of process-wide;
- ``compiler.function.Module.load`` (cuModuleLoadData) keeps the image;
- the on-disk kernel cache is bypassed (a hit would skip NVRTC).
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import tempfile
import threading
import types
from contextlib import contextmanager
from typing import NamedTuple


class Resources(NamedTuple):
    registers: int
    static_shared: int  # bytes
    stack: int  # bytes of stack frame per thread
    spill_stores: int  # bytes
    spill_loads: int  # bytes
    max_threads: int | None  # from .maxntid / .reqntid, None without __launch_bounds__


REGISTERS_PER_SM = 65536  # sm_80 and sm_90: 64 K 32-bit registers per SM (and per block)
STATIC_SHARED_MAX = 48 * 1024  # static + dynamic without the opt-in attribute
REGISTER_ALLOC_UNIT = 256  # registers are allocated per warp in units of 256 (8 per thread)


def registers_for_block(registers, block):
    """Registers a block of ``block`` threads takes: per-warp allocation rounded
    up to 256 registers (8 per thread), as the occupancy calculator does."""
    per_warp = -(-registers * 32 // REGISTER_ALLOC_UNIT) * REGISTER_ALLOC_UNIT
    return per_warp * -(-block // 32)


# ---------------------------------------------------------------- ptxas
@functools.lru_cache(maxsize=None)
def ptxas_path():
    """The wheel's ptxas (nvidia-cuda-nvcc, the version of the wheel's NVRTC/NVVM)
    through cuda-pathfinder, else the first ptxas on PATH; None if neither."""
    try:
        from cuda.pathfinder import find_nvidia_binary_utility

        found = find_nvidia_binary_utility("ptxas")
        if found:
            return found
    except Exception:  # no cuda-pathfinder, or one without binary lookup
        pass
    return shutil.which("ptxas")


_ENTRY = re.compile(r"Compiling entry function '([^']+)' for 'sm_(\d+)'")
_PROPS = re.compile(r"Function properties for (\S+)")
_FRAME = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_USED = re.compile(r"Used (\d+) registers")
_SMEM = re.compile(r"(\d+) bytes smem")
_PTX_ENTRY = re.compile(r"\.entry\s+([A-Za-z_$][\w$]*)\s*\(")
_NTID = re.compile(r"\.(?:maxntid|reqntid)\s+(\d+)(?:\s*,\s*(\d+))?(?:\s*,\s*(\d+))?")


def parse_ptxas_log(log):
    """{entry: (registers, smem, stack, spill stores, spill loads)} from ptxas -v output."""
    out, entry, props = {}, None, None
    frames = {}
    for line in log.splitlines():
        m = _ENTRY.search(line)
        if m:
            entry = m.group(1)
            out[entry] = [0, 0, 0, 0, 0]
            continue
        m = _PROPS.search(line)
        if m:
            props = m.group(1)
            continue
        m = _FRAME.search(line)
        if m and props is not None:
            frames[props] = tuple(int(v) for v in m.groups())
            props = None
            continue
        m = _USED.search(line)
        if m and entry is not None:
            out[entry][0] = int(m.group(1))
            s = _SMEM.search(line)
            out[entry][1] = int(s.group(1)) if s else 0
    for name, r in out.items():
        r[2:5] = frames.get(name, (0, 0, 0))
    return {k: tuple(v) for k, v in out.items()}


def ptx_max_threads(ptx):
    """{entry: threads per block allowed by .maxntid/.reqntid} for the entries that declare one."""
    found = {}
    starts = [(m.start(), m.group(1)) for m in _PTX_ENTRY.finditer(ptx)]
    for pos, name in starts:
        body_start = ptx.find("{", pos)
        header = ptx[pos : body_start if body_start >= 0 else len(ptx)]
        m = _NTID.search(header)
        if m:
            found[name] = int(m.group(1)) * int(m.group(2) or 1) * int(m.group(3) or 1)
    return found


def ptx_resources(ptx, arch, ptxas=None):
    """{kernel (mangled) name: Resources} of every entry of ``ptx`` assembled for sm_``arch``."""
    ptxas = ptxas or ptxas_path()
    if ptxas is None:
        raise FileNotFoundError("ptxas not found (install nvidia-cuda-nvcc or put a CUDA toolkit on PATH)")
    if isinstance(ptx, bytes):
        ptx = ptx.decode()
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "k.ptx")
        with open(src, "w") as f:
            f.write(ptx)
        r = subprocess.run(
            [ptxas, "-v", f"-arch=sm_{arch}", "-o", os.path.join(tmp, "k.cubin"), src],
            capture_output=True,
            text=True,
        )
    log = r.stdout + r.stderr
    if r.returncode != 0:
        raise RuntimeError(f"ptxas -arch=sm_{arch} failed:\n{log[-4000:]}")
    warned = [line for line in log.splitlines() if "warning" in line.lower()]
    if warned:  # nvcc's -Werror covers its front end only (test_nvcc.py): ptxas's warnings fail here
        raise RuntimeError(f"ptxas -arch=sm_{arch} warned:\n" + "\n".join(warned[:20]))
    used = parse_ptxas_log(log)
    limits = ptx_max_threads(ptx)
    entries = {m.group(1) for m in _PTX_ENTRY.finditer(ptx)}
    missing = entries - set(used)
    if missing:
        raise RuntimeError(f"ptxas -v reported no resources for {sorted(missing)}:\n{log[-4000:]}")
    return {name: Resources(*used[name], limits.get(name)) for name in entries}


# ---------------------------------------------------------------- CuPy's compile path
def cupy_nvrtc_version():
    """(major, minor) of the NVRTC CuPy loads, or None when CuPy or NVRTC is missing."""
    try:
        from cupy.cuda import compiler

        return tuple(compiler._get_nvrtc_version())
    except Exception:  # ImportError, or libnvrtc not loadable
        return None


class Compiled(NamedTuple):
    image: bytes  # cubin (ELF) or PTX, as NVRTC returned it to CuPy
    mapping: dict | None  # name expression -> lowered (mangled) name
    kind: str  # "cubin" or "ptx"


_patch_lock = threading.Lock()
_patched = {"depth": 0, "saved": None}
_mode = threading.local()  # .ptx: this thread's compile asks for PTX


@contextmanager
def _offline(ptx):
    """CuPy's compiler with its device-bound pieces replaced (see the module
    doc), for as long as any thread compiles; ``ptx`` for this thread only."""
    from cupy.cuda import compiler
    from cupy.cuda import function

    class _Module(function.Module):  # a real Module: compile_with_cache is typed to return one
        image = None

        def load(self, image):  # instead of cuModuleLoadData
            self.image = bytes(image)

    class _NoCache:
        def load(self, name):
            return None

        def save(self, name, payload, source):
            pass

    with _patch_lock:
        if _patched["depth"] == 0:
            memoized = compiler._get_arch_for_options_for_nvrtc
            unwrapped = getattr(memoized, "__wrapped__", memoized)

            def arch_options(arch=None):
                if getattr(_mode, "ptx", False):
                    # CuPy's own branch for CUPY_COMPILE_WITH_PTX=1 (compiler._use_ptx)
                    return f"-arch=compute_{arch}", "ptx"
                return unwrapped(arch)

            _patched["saved"] = (memoized, compiler.function, compiler._kernel_cache_backend)
            compiler._get_arch_for_options_for_nvrtc = arch_options
            compiler.function = types.SimpleNamespace(Module=_Module)
            compiler._set_kernel_cache_backend(_NoCache())
        _patched["depth"] += 1
    _mode.ptx = bool(ptx)
    try:
        yield
    finally:
        _mode.ptx = False
        with _patch_lock:
            _patched["depth"] -= 1
            if _patched["depth"] == 0:
                memoized, fn, cache = _patched["saved"]
                compiler._get_arch_for_options_for_nvrtc = memoized
                compiler.function = fn
                compiler._set_kernel_cache_backend(cache)


_cache: dict = {}
_cache_lock = threading.Lock()


def cupy_compile(source, options=(), arch=90, *, name_expressions=None, prepend_cupy_headers=False, ptx=False):
    """``source`` compiled as CuPy compiles it: ``cupy._core.core.compile_with_cache``
    (CuPy's option assembly: default C++ standard, bundled CCCL and CuPy
    headers, the CUDA headers cuda-pathfinder finds, -ftz=true,
    --device-as-default-execution-space, -arch=sm_XX for a cubin or
    compute_XX for PTX) on NVRTC, for sm_``arch``. Cached per process.
    RawModule passes ``prepend_cupy_headers=False``; ElementwiseKernel
    compiles with the default (True). Raises CuPy's CompileException when NVRTC
    rejects the source."""
    from cupy._core import core

    names = tuple(name_expressions) if name_expressions else None
    key = (source, tuple(options), int(arch), names, bool(prepend_cupy_headers), bool(ptx))
    with _cache_lock:
        hit = _cache.get(key)
    if hit is not None:
        return hit
    with _offline(ptx):
        mod = core.compile_with_cache(
            source,
            tuple(options),
            arch=str(arch),
            prepend_cupy_headers=prepend_cupy_headers,
            backend="nvrtc",
            name_expressions=names,
            jitify=False,
        )
    image = mod.image
    result = Compiled(image, dict(mod.mapping) if names else None, "cubin" if image[:4] == b"\x7fELF" else "ptx")
    with _cache_lock:
        _cache.setdefault(key, result)
    return result


def compile_raw_module(name, dtype, arch, ptx=False):
    """The RawModule of ``gpu_act.backends.cupy._modules`` for (file, dtype), compiled for sm_``arch``."""
    from gpu_act import kernels
    from gpu_act.backends.cupy import _modules

    return cupy_compile(
        kernels.source(name),
        _modules.OPTIONS,
        arch,
        name_expressions=kernels.INSTANCES[(name, dtype)],
        prepend_cupy_headers=False,
        ptx=ptx,
    )


def cupy_module_resources(name, dtype, arch):
    """{name expression: Resources} of the RawModule (file, dtype) on sm_``arch``:
    CuPy's compile path to PTX, then ptxas -v for sm_``arch``."""
    c = compile_raw_module(name, dtype, arch, ptx=True)
    res = ptx_resources(c.image, arch)
    lost = {expr: mangled for expr, mangled in (c.mapping or {}).items() if mangled not in res}
    if lost:
        raise AssertionError(f"{name} {dtype}: lowered names that are no kernel of the PTX: {lost}")
    return {expr: res[mangled] for expr, mangled in c.mapping.items()}


def cubin_resources(name, dtype, arch):
    """{name expression: Resources} of the cubin CuPy itself builds for the
    RawModule (file, dtype): the same compile with ``--ptxas-options=-v``
    added, read from NVRTC's log (``max_threads`` is None: a cubin has no PTX
    directives). Used to check that ``cupy_module_resources`` measures what
    CuPy loads."""
    import io

    from cupy._core import core

    from gpu_act import kernels
    from gpu_act.backends.cupy import _modules

    log = io.StringIO()
    with _offline(False):
        mod = core.compile_with_cache(
            kernels.source(name),
            tuple(_modules.OPTIONS) + ("--ptxas-options=-v",),
            arch=str(arch),
            prepend_cupy_headers=False,
            backend="nvrtc",
            name_expressions=tuple(kernels.INSTANCES[(name, dtype)]),
            log_stream=log,
            jitify=False,
        )
    used = parse_ptxas_log(log.getvalue())
    return {expr: Resources(*used[mangled], None) for expr, mangled in mod.mapping.items()}
