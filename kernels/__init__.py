"""The CUDA C sources of the CuPy backend (this directory, installed as
``gpu_act.kernels``) and what the backend compiles from them.

- ``source(name)``: a file with its local includes inlined, as CuPy compiles it;
- the ``*_name`` functions: the template instances of the row-wise kernels,
  used both when launching and to list every instance a module is compiled
  for (``INSTANCES``), so the two never disagree;
- ``operation``: the C body of each elementwise kernel around a formula of
  ``activations.cuh``; ``gated_operation`` the body of glu's backward around a
  gate and its derivative; ``bce_operation`` likewise around the binary
  cross-entropy formulas of ``losses.cuh``.
The nvcc test (tests/toolchain/test_nvcc.py) compiles exactly these. Nothing here
imports CuPy.
"""

import re
from importlib import resources

import numpy as np

# storage type of each accepted dtype (by name: ml_dtypes' bfloat16 is "bfloat16")
# in the kernels, and its compute type
TYPES = {"float16": "__half", "bfloat16": "__nv_bfloat16", "float32": "float", "float64": "double"}
COMPUTE = {"float16": "float", "bfloat16": "float", "float32": "float", "float64": "double"}

# team index = the TEAM_* constant of kernels/rows.cuh
TEAMS = ("thread", "warp", "block")

ROW_FILES = ("softmax.cu", "cross_entropy.cu", "maxout.cu", "sparsemax.cu")
ACTIVATIONS = "activations.cuh"
LOSSES = "losses.cuh"

_INCLUDE = re.compile(r'^\s*#include\s+"([^"]+)"\s*$', re.M)
_ONCE = re.compile(r"^\s*#pragma\s+once\s*$\n?", re.M)


def text(name):
    """One file of gpu_act.kernels, as shipped."""
    return resources.files(__name__).joinpath(name).read_text(encoding="utf-8")


def source(name, _seen=None):
    """``name`` with its local ``#include "..."`` lines replaced by those files
    (each once, ``#pragma once`` dropped): one self-contained text, so CuPy's compile cache, keyed by the
    source text, also sees edits to the headers."""
    seen = set() if _seen is None else _seen

    def inline(match):
        inc = match.group(1)
        if inc in seen:
            return ""
        seen.add(inc)
        return source(inc, seen)

    return _ONCE.sub("", _INCLUDE.sub(inline, text(name)))


def _b(flag):
    return "true" if flag else "false"


def softmax_name(direction, dtype, team, log):
    """direction "fwd" or "bwd"."""
    return f"ga::softmax_{direction}<{TYPES[dtype]}, {TEAMS.index(team)}, {_b(log)}>"


def logsumexp_name(direction, dtype, team):
    """direction "fwd" or "bwd"."""
    return f"ga::logsumexp_{direction}<{TYPES[dtype]}, {TEAMS.index(team)}>"


def xent_index_name(dtype, team):
    return f"ga::xent_index<{TYPES[dtype]}, {TEAMS.index(team)}>"


def xent_prob_name(dtype, target_type, team):
    """target_type: the kernel type of the targets, the logits' type or their compute type."""
    return f"ga::xent_prob<{TYPES[dtype]}, {target_type}, {TEAMS.index(team)}>"


def nll_name(dtype):
    return f"ga::nll<{TYPES[dtype]}>"


def sparsemax_name(direction, dtype, team):
    """direction "fwd" or "bwd"."""
    return f"ga::sparsemax_{direction}<{TYPES[dtype]}, {TEAMS.index(team)}>"


def maxout_name(direction, dtype):
    return f"ga::maxout_{direction}<{TYPES[dtype]}>"


def target_types(dtype):
    """The kernel types probability targets come in for logits of ``dtype``."""
    return sorted({TYPES[dtype], COMPUTE[dtype]})


def _instances(name, dtype):
    if name == "softmax.cu":
        return [softmax_name(d, dtype, t, log) for d in ("fwd", "bwd") for t in TEAMS for log in (False, True)] + [
            logsumexp_name(d, dtype, t) for d in ("fwd", "bwd") for t in TEAMS
        ]
    if name == "cross_entropy.cu":
        return (
            [xent_index_name(dtype, t) for t in TEAMS]
            + [xent_prob_name(dtype, u, t) for u in target_types(dtype) for t in TEAMS]
            + [nll_name(dtype)]
        )
    if name == "sparsemax.cu":
        return [sparsemax_name(d, dtype, t) for d in ("fwd", "bwd") for t in TEAMS]
    return [maxout_name(d, dtype) for d in ("fwd", "bwd")]


# (file, dtype) -> the template instances one RawModule is compiled with
INSTANCES = {(f, d): _instances(f, d) for f in ROW_FILES for d in TYPES}


CTYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}

# elementwise wrapper -> (input parameters, C body); {f} is the formula's C name
# (the registry function's own name), {C} the compute type, {p}/{args} its
# scalar parameters; ElementwiseKernel supplies T, S (and O, the output's) from the arrays
OPERATIONS = {
    "unary": ("T x{params}", "y = (T)(ga::{f}<{C}>(({C})x{args}));"),
    "scaled": ("T g, T x{params}", "y = (T)(({C})g * ga::{f}<{C}>(({C})x{args}));"),
    "unary_slope": ("T x, S s", "y = (T)(ga::{f}<{C}>(({C})x, ({C})s));"),
    # the output may be of the compute type (PReLU's weight-gradient terms): O
    "scaled_slope": ("T g, T x, S s", "y = (O)(({C})g * ga::{f}<{C}>(({C})x, ({C})s));"),
    "slopes": ("uint64 key, {D} lower, {D} upper", "y = ({C})ga::{f}<{C}>(key, (unsigned long long)i, lower, upper);"),
}


def operation(wrapper, fname, nparams, ctype):
    """(input params, output params, C body) of one kernel."""
    ins, body = OPERATIONS[wrapper]
    C = CTYPES[np.dtype(ctype)]
    D = np.dtype(ctype).name
    params = "".join(f", {D} p{k}" for k in range(nparams))
    args = "".join(f", p{k}" for k in range(nparams))
    out = {"slopes": f"{D} y", "scaled_slope": "O y"}.get(wrapper, "T y")
    return ins.format(params=params, D=D), out, body.format(f=fname, C=C, args=args)


def gated_operation(fwd, der, nparams, ctype):
    """(input params, output params, C body) of glu's backward kernel around the
    gate ``fwd`` and its derivative ``der`` (C names = the formulas.py names):
    from the gradient g, the gate half a and the other half b, each read once in
    the compute type, da = g b act'(a) and db = g act(a), of their type T."""
    C = CTYPES[np.dtype(ctype)]
    D = np.dtype(ctype).name
    params = "".join(f", {D} p{k}" for k in range(nparams))
    args = "".join(f", p{k}" for k in range(nparams))
    body = (f"const {C} gc = ({C})g, ac = ({C})a; da = (T)(gc * ({C})b * ga::{der}<{C}>(ac{args})); "
            f"db = (T)(gc * ga::{fwd}<{C}>(ac{args}));")
    return f"T g, T a, T b{params}", "T da, T db", body


def bce_operation(fwd, der, logits, weighted, pos_weighted, want_grad, ctype):
    """(input params, output params, C body) of the binary cross-entropy kernel
    around the formulas ``fwd`` and ``der`` of ``losses.cuh`` (C names = the
    formulas.py names; on logits they take a positive weight, on probabilities
    not): per element the loss ``l`` in the compute type and, with
    ``want_grad``, the gradient times ``scale`` as ``g`` in z's type T, the
    operands read once, in the compute type. The weight w and the positive
    weight pw are input arrays when given (broadcast by the kernel), else 1."""
    C = CTYPES[np.dtype(ctype)]
    D = np.dtype(ctype).name
    ins = ["T z", "U t"]
    operands = [f"({C})z", f"({C})t"]
    if weighted:
        ins.append("W w")
    operands.append(f"({C})w" if weighted else f"{C}(1)")
    if logits:
        if pos_weighted:
            ins.append("P pw")
        operands.append(f"({C})pw" if pos_weighted else f"{C}(1)")
    outs = [f"{D} l"]
    if want_grad:
        ins.append(f"{D} scale")
        outs.append("T g")
    names = ("zc", "tc", "wc", "pwc")[: len(operands)]
    call = ", ".join(names)
    body = f"const {C} {', '.join(f'{n} = {a}' for n, a in zip(names, operands))}; l = ga::{fwd}<{C}>({call});"
    if want_grad:
        body += f" g = (T)(ga::{der}<{C}>({call}) * scale);"
    return ", ".join(ins), ", ".join(outs), body
