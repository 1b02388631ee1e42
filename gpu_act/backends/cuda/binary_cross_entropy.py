"""Binary cross-entropy element by element: the loss and its gradient in one pass.

On logits z: ``formulas.bce_logits_fwd`` / ``bce_logits_der`` (z, t, w, pw);
on probabilities p: ``formulas.bce_fwd`` / ``bce_der`` (p, t, w), compiled as
device functions for the compute dtype (``_kernels.formulas``). Operands are
loaded through their own dtypes' codecs (``_codecs``: ``_Lz``, ``_Lt``,
``_Lw``, ``_Lp``), converted to the compute dtype (float16 and bfloat16 ->
float32); w and pw (1 when absent) are read through broadcast views, stride 0
along their unit dims (``_operands.broadcast``). Losses are stored in the
compute dtype, the gradient times ``scale`` in z's dtype (``_Sg``). Paths as
``_map``'s: "flat" (every operand one dense run in the same order) and
"strided" (the flat index split into coordinates of the merged shape);
grid-stride loops. Operands a flag turns off (``w`` without ``has_w``, ``pw``
without ``has_pw``, ``g`` without ``want_grad``) are never touched.
``any_negative`` checks pos_weight on the host.
"""

import numpy as np

from ... import _compile, _cuda
from ..._dtypes import COMPUTE
from ...formulas import bce_der, bce_fwd, bce_logits_der, bce_logits_fwd
from . import _arrays, _codecs, _config, _kernels, _operands, _staging

cuda = _cuda.cuda


def _flat(z, t, w, pw, loss, g, scale, want_grad, has_w, has_pw):
    i = cuda.grid(1)
    step = cuda.gridsize(1)
    n = loss.shape[0]
    one = _C(1.0)  # noqa: F821
    while i < n:
        zv = _Lz(z[i])  # noqa: F821
        tv = _Lt(t[i])  # noqa: F821
        wv = _Lw(w[i]) if has_w else one  # noqa: F821
        pv = _Lp(pw[i]) if has_pw else one  # noqa: F821
        loss[i] = _fwd(zv, tv, wv, pv)  # noqa: F821
        if want_grad:
            g[i] = _Sg(_der(zv, tv, wv, pv) * scale)  # noqa: F821
        i += step


def _strided(z, zo, zs, t, to, ts, w, wo, ws, pw, po, ps, loss, lo, los, g, go, gs, shape, scale, want_grad, has_w,
             has_pw):
    i = cuda.grid(1)
    step = cuda.gridsize(1)
    total = 1
    for k in range(len(shape)):
        total *= shape[k]
    one = _C(1.0)  # noqa: F821
    while i < total:
        # C-order coordinates of i, accumulated into each operand's offset
        r = i
        iz, it, iw, ip, il, ig = zo, to, wo, po, lo, go
        for k in range(len(shape) - 1, -1, -1):
            q = r // shape[k]
            j = r - q * shape[k]
            r = q
            iz += j * zs[k]
            it += j * ts[k]
            iw += j * ws[k]
            ip += j * ps[k]
            il += j * los[k]
            ig += j * gs[k]
        zv = _Lz(z[iz])  # noqa: F821
        tv = _Lt(t[it])  # noqa: F821
        wv = _Lw(w[iw]) if has_w else one  # noqa: F821
        pv = _Lp(pw[ip]) if has_pw else one  # noqa: F821
        loss[il] = _fwd(zv, tv, wv, pv)  # noqa: F821
        if want_grad:
            g[ig] = _Sg(_der(zv, tv, wv, pv) * scale)  # noqa: F821
        i += step


def _no_pw(p, t, w, pw):
    # the formulas on probabilities take no positive weight
    return _g(p, t, w)  # noqa: F821 (bound by instantiate)


PATHS = {"flat": _flat, "strided": _strided}


NATIVE = (_codecs.NATIVE,) * 4


def kernel(logits, ctype, path, codecs=NATIVE):
    """The kernel of the loss on logits (``logits``) or on probabilities, for
    compute dtype ``ctype`` and ``path`` ("flat"/"strided"); z (and the
    gradient), t, w and pw stored as ``codecs``."""
    ctype = np.dtype(ctype)
    name = "logits" if logits else "probs"

    def build():
        f = _kernels.formulas(ctype)
        if logits:
            fwd, der = f[bce_logits_fwd.__name__], f[bce_logits_der.__name__]
        else:
            tag = f"bce.probs.{ctype.name}"
            fwd = _compile.instantiate(_no_pw, {"_g": f[bce_fwd.__name__]}, f"{tag}.fwd", _cuda.device, ctype)
            der = _compile.instantiate(_no_pw, {"_g": f[bce_der.__name__]}, f"{tag}.der", _cuda.device, ctype)
        bindings = {"_fwd": fwd, "_der": der, "_C": ctype.type, "_Sg": _codecs.store(codecs[0])}
        bindings.update({f"_L{o}": _codecs.load(c, ctype) for o, c in zip("ztwp", codecs)})
        return _kernels.kernel(PATHS[path], bindings, f"bce.{name}.{path}.{_codecs.tag(codecs)}", ctype, "elementwise")

    return _kernels.cached(("bce", name, ctype, path, codecs), build)


def binary_cross_entropy(ctx, z, t, w, pw, logits, scale, want_grad):
    """(element losses in the compute dtype, gradient or None in z's dtype),
    both of z's shape, C-contiguous; z is not empty."""
    ctype = COMPUTE[z.dtype]
    loss = _arrays.empty(ctx, z.shape, ctype)
    grad = _arrays.empty(ctx, z.shape, z.dtype) if want_grad else None
    # z stands in for the operands that are off (never touched)
    operands = [z, t] + [z if a is None else _operands.broadcast(a, z.shape) for a in (w, pw)]
    operands += [loss, grad if want_grad else z]
    flat, extent, views = _operands.elementwise_operands(ctx, operands)
    n = extent if flat else int(np.prod(extent))
    config = _config.plan("elementwise", 1, n, "unit", ctype.itemsize, _config.limits(ctx))
    args = views if flat else [v for op in views for v in op] + [extent]
    # z stands in for w and pw when they are off: its codec too
    codecs = tuple(_codecs.of(a.dtype) for a in operands[:4])
    k = kernel(logits, ctype, "flat" if flat else "strided", codecs)
    _kernels.launch(ctx, k, config, [*args, ctype.type(scale), want_grad, w is not None, pw is not None])
    return loss, grad


def any_negative(ctx, a):
    """Whether ``a`` has an entry < 0: read back to the host (a parameter array
    such as pos_weight, a few entries), through a C-contiguous copy when ``a``
    is strided. Synchronises the call's stream."""
    if not a.size:
        return False
    if not a.is_c_contiguous():
        c = _arrays.empty(ctx, a.shape, a.dtype)
        _staging.convert(ctx, a, c)
        a = c
    values = _codecs.host(_operands.contiguous_view(ctx, a).copy_to_host(stream=ctx.stream), a.dtype)
    _cuda.synchronize(ctx.stream)
    return bool((values < 0).any())
