"""The implementations compared: gpu_act's backends and its peers.

A ``Peer`` converts host inputs to its arrays (``to``) and turns an op name
into a callable on them (``impl``), or None where it has no such op (an empty
cell in the table). Peers whose library is missing are simply not listed.

- numpy / cupy: straightforward array compositions (the ``_COMPOSE`` table,
  one code for both through the array module ``xp``), the losses in
  overflow-safe forms;
- scipy / cupyx: ``scipy.special`` softmax, log_softmax, expit (sigmoid);
- torch / torch-cuda: ``torch.nn.functional`` and the ATen backward ops that
  autograd itself calls, the losses as ``torch.nn.functional`` compositions
  differentiated by autograd, PyTorch CPU with gpu_act's thread count;
- triton: a fused one-row-per-program softmax (rows up to 65536 long);
- gpu_act / gpu_act-cuda / gpu_act-cupy: gpu_act on each available backend.
"""

import importlib
from dataclasses import dataclass

import numba
import numpy as np

import gpu_act as ga

from .ops import ALL, SOFTCAP, Z_LOSS


def _softmax(xp, x):
    e = xp.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _log_softmax(xp, x):
    d = x - x.max(-1, keepdims=True)
    return d - xp.log(xp.exp(d).sum(-1, keepdims=True))


def _cross_entropy(xp, z, t):
    # mean loss and its gradient (softmax - onehot)/rows, as times 1/rows: 65536
    # rows overflow float16
    rows = xp.arange(z.shape[0])
    lsm = _log_softmax(xp, z)
    grad = xp.exp(lsm)
    grad[rows, t] -= 1
    return -lsm[rows, t].mean(), grad * (1 / z.shape[0])


def _cross_entropy_capped(xp, z, t, w, z_loss, cap):
    # v = cap tanh(z / cap); per row w[t] (lse - v[t]) + z_loss lse^2, over the sum
    # of the targets' weights; gradient (softmax(v) (w[t] + 2 z_loss lse) - w[t]
    # onehot) (1 - tanh^2) over the same sum. |v| <= cap: exp(v - max) cannot
    # overflow; the rows are divided before they are summed (float16 holds no
    # sum of 8192 losses of ~10)
    rows = xp.arange(z.shape[0])
    th = xp.tanh(z / cap)
    v = cap * th
    m = v.max(-1, keepdims=True)
    e = xp.exp(v - m)
    s = e.sum(-1, keepdims=True)
    lse = (m + xp.log(s))[:, 0]
    wt = w[t]
    total = wt.sum()
    loss = ((wt * (lse - v[rows, t]) + z_loss * lse**2) / total).sum()
    grad = e / s * (wt + 2 * z_loss * lse)[:, None]
    grad[rows, t] -= wt
    return loss, grad * (1 - th**2) / total


def _binary_cross_entropy_with_logits(xp, z, y):
    # mean of softplus(z) - y z and its gradient (sigmoid(z) - y)/n, both through
    # e^-|z|, which cannot overflow; times 1/n, a float16 subnormal, where n = 2^24
    # itself overflows float16
    e = xp.exp(-xp.abs(z))
    sigmoid = xp.where(z >= 0, 1 / (1 + e), e / (1 + e))
    loss = (xp.maximum(z, 0) + xp.log1p(e) - y * z).mean()
    return loss, (sigmoid - y) * (1 / z.size)


def _logsumexp(xp, x):
    m = x.max(-1, keepdims=True)
    return (m + xp.log(xp.exp(x - m).sum(-1, keepdims=True)))[..., 0]


def _sparsemax(xp, x):
    # by sorting each row (Martins & Astudillo 2016): support size k = max{k :
    # 1 + k z_(k) > sum_{i <= k} z_(i)} of the decreasing z, tau = (that sum - 1)/k
    z = -xp.sort(-x, axis=-1)
    csum = xp.cumsum(z, axis=-1)
    k = xp.arange(1, x.shape[-1] + 1, dtype=x.dtype)
    support = (1 + k * z > csum).sum(axis=-1, keepdims=True)
    tau = (xp.take_along_axis(csum, support - 1, axis=-1) - 1) / support
    return xp.maximum(x - tau, 0)


def _softmax_masked(xp, x, m):
    # the usual composition: masked entries set to -inf (a row with none left: NaN)
    return _softmax(xp, xp.where(m, x, -xp.inf))


def _swiglu_step(xp, x, g):
    # halves along axis 1 in PyTorch's glu order: b (values) first, a (gate) second;
    # y = b silu(a), dx = [g silu(a), g b silu'(a)], silu'(a) = s (1 + a (1 - s))
    b, a = x[:, :1], x[:, 1:]
    s = 1 / (1 + xp.exp(-a))
    dx = xp.concatenate([g * a * s, g * b * s * (1 + a * (1 - s))], axis=1)
    return b * a * s, dx


_COMPOSE = {
    "softmax": _softmax,
    "log_softmax": _log_softmax,
    "softmax_backward": lambda xp, g, y: y * (g - (g * y).sum(-1, keepdims=True)),
    "log_softmax_backward": lambda xp, g, y: g - xp.exp(y) * g.sum(-1, keepdims=True),
    "cross_entropy": _cross_entropy,
    "cross_entropy_capped": lambda xp, z, t, w: _cross_entropy_capped(xp, z, t, w, Z_LOSS, SOFTCAP),
    "binary_cross_entropy_with_logits": _binary_cross_entropy_with_logits,
    "logsumexp": _logsumexp,
    "sparsemax": _sparsemax,
    "softmax_masked": _softmax_masked,
    "softmax_masked_row": _softmax_masked,
    "swiglu_step": _swiglu_step,
    "sigmoid": lambda xp, x: 1 / (1 + xp.exp(-x)),
    "tanh": lambda xp, x: xp.tanh(x),
    "relu": lambda xp, x: xp.maximum(x, 0),
    "relu6": lambda xp, x: xp.clip(x, 0, 6),
    "hardtanh": lambda xp, x: xp.clip(x, -1, 1),
    "leaky_relu": lambda xp, x: xp.where(x > 0, x, 0.01 * x),
    "elu": lambda xp, x: xp.where(x > 0, x, xp.expm1(x)),
    "silu": lambda xp, x: x / (1 + xp.exp(-x)),
    "softplus": lambda xp, x: xp.logaddexp(0, x),
    "softsign": lambda xp, x: x / (1 + xp.abs(x)),
    "mish": lambda xp, x: x * xp.tanh(xp.logaddexp(0, x)),
    "logsigmoid": lambda xp, x: -xp.logaddexp(0, -x),
    "sigmoid_backward": lambda xp, g, x: g * (s := 1 / (1 + xp.exp(-x))) * (1 - s),
    "tanh_backward": lambda xp, g, x: g * (1 - xp.tanh(x) ** 2),
    "relu_backward": lambda xp, g, x: xp.where(x > 0, g, 0),
}

_TORCH_FORWARD = {  # gpu_act name -> torch.nn.functional name, for the same defaults
    "swish": "silu",
    "logsigmoid": "logsigmoid",
}
_TORCH_BACKWARD = {  # gpu_act name -> f(aten, g, x) with the ATen op autograd uses
    # ATen's sigmoid/tanh backward take the forward's output: timed on x (same traffic)
    "sigmoid": lambda A, g, x: A.sigmoid_backward(g, x),
    "tanh": lambda A, g, x: A.tanh_backward(g, x),
    "relu": lambda A, g, x: A.threshold_backward(g, x, 0),
    "relu6": lambda A, g, x: A.hardtanh_backward(g, x, 0.0, 6.0),
    "hardtanh": lambda A, g, x: A.hardtanh_backward(g, x, -1.0, 1.0),
    "leaky_relu": lambda A, g, x: A.leaky_relu_backward(g, x, 0.01, False),
    "elu": lambda A, g, x: A.elu_backward(g, 1.0, 1.0, 1.0, False, x),
    "selu": lambda A, g, x: A.elu_backward(g, 1.6732632423543772, 1.0507009873554805, 1.0, False, x),
    "celu": lambda A, g, x: A.elu_backward(g, 1.0, 1.0, 1.0, False, x),
    "gelu": lambda A, g, x: A.gelu_backward(g, x),
    "silu": lambda A, g, x: A.silu_backward(g, x),
    "swish": lambda A, g, x: A.silu_backward(g, x),
    "mish": lambda A, g, x: A.mish_backward(g, x),
    "softplus": lambda A, g, x: A.softplus_backward(g, x, 1.0, 20.0),
    "hardsigmoid": lambda A, g, x: A.hardsigmoid_backward(g, x),
    "hardswish": lambda A, g, x: A.hardswish_backward(g, x),
}


@dataclass
class Peer:
    name: str
    device: str  # "cpu" or "gpu"
    version: str
    to: object  # host arrays -> this peer's arrays
    impl: object  # op name -> callable or None
    gpu_act: bool = False


def _module(name):
    try:
        return importlib.import_module(name)
    except Exception:  # missing, or broken (no driver, ...)
        return None


def _identity(*a):
    return a


def _gpu_act(backend, to, device, version):
    def impl(op):
        return ALL[op].gpu_act(backend)

    return Peer(f"gpu_act-{backend}" if backend != "cpu" else "gpu_act", device, version, to, impl, gpu_act=True)


def _compose(name, xp, to, device):
    def impl(op):
        f = _COMPOSE.get(op)
        return None if f is None else (lambda *a: f(xp, *a))

    return Peer(name, device, xp.__version__, to, impl)


def _scipy_like(name, special, to, device, version):
    table = {
        "softmax": lambda x: special.softmax(x, axis=-1),
        "log_softmax": lambda x: special.log_softmax(x, axis=-1),
        "sigmoid": special.expit,
    }
    return Peer(name, device, version, to, table.get)


def _torch(torch, device, to):
    F = torch.nn.functional
    A = torch.ops.aten

    def impl(op):
        if op in ("softmax", "log_softmax"):
            return lambda x: getattr(torch, op)(x, -1)
        if op == "softmax_backward":
            return lambda g, y: A._softmax_backward_data(g, y, -1, y.dtype)
        if op == "log_softmax_backward":
            return lambda g, y: A._log_softmax_backward_data(g, y, -1, y.dtype)
        if op == "cross_entropy":

            def ce(z, t):
                z = z.detach().requires_grad_()
                loss = F.cross_entropy(z, t)
                return loss, torch.autograd.grad(loss, z)[0]

            return ce
        if op == "cross_entropy_capped":

            def ce_capped(z, t, w):
                z = z.detach().requires_grad_()
                # PyTorch's weighted mean divides by the sum of w[t]; so does the z-loss
                # term, scaled before it is summed (float16 holds no sum of 8192 lse^2)
                v = SOFTCAP * torch.tanh(z / SOFTCAP)
                loss = F.cross_entropy(v, t, weight=w) + (Z_LOSS * torch.logsumexp(v, -1) ** 2).sum() / w[t].sum()
                return loss, torch.autograd.grad(loss, z)[0]

            return ce_capped
        if op == "binary_cross_entropy_with_logits":

            def bce(z, y):
                z = z.detach().requires_grad_()
                loss = F.binary_cross_entropy_with_logits(z, y)
                return loss, torch.autograd.grad(loss, z)[0]

            return bce
        if op == "logsumexp":
            return lambda x: torch.logsumexp(x, -1)
        if op in ("softmax_masked", "softmax_masked_row"):  # PyTorch's usual masked_fill composition
            return lambda x, m: torch.softmax(x.masked_fill(~m, float("-inf")), -1)
        if op == "sparsemax":  # PyTorch has none: the sort-based composition

            def sparsemax(x):
                z = torch.sort(x, -1, descending=True).values
                csum = z.cumsum(-1)
                k = torch.arange(1, x.shape[-1] + 1, device=x.device, dtype=x.dtype)
                support = (1 + k * z > csum).sum(-1, keepdim=True)
                tau = (csum.gather(-1, support - 1) - 1) / support
                return torch.clamp(x - tau, min=0)

            return sparsemax
        if op == "swiglu_step":

            def swiglu_step(x, g):
                x = x.detach().requires_grad_()
                y = x[:, :1] * F.silu(x[:, 1:])
                return y, torch.autograd.grad(y, x, g)[0]

            return swiglu_step
        if op.endswith("_backward"):
            base = op[: -len("_backward")]
            f = _TORCH_BACKWARD.get(base)
            return None if f is None else (lambda g, x: f(A, g, x))
        f = getattr(F, _TORCH_FORWARD.get(op, op), None)
        return f

    name = "torch" if device == "cpu" else "torch-cuda"
    return Peer(name, device, torch.__version__, to, impl)


def _triton_softmax(triton, torch):
    tl = triton.language

    @triton.jit
    def kernel(out_ptr, in_ptr, in_stride, out_stride, n_cols, BLOCK: tl.constexpr):
        # one program per row: max, exp, sum and scale with the row in registers
        row = tl.program_id(0)
        offs = tl.arange(0, BLOCK)
        mask = offs < n_cols
        x = tl.load(in_ptr + row * in_stride + offs, mask=mask, other=-float("inf")).to(tl.float32)
        e = tl.exp(x - tl.max(x, axis=0))
        y = e / tl.sum(e, axis=0)
        tl.store(out_ptr + row * out_stride + offs, y.to(out_ptr.dtype.element_ty), mask=mask)

    def softmax(x):
        rows, cols = x.shape
        out = torch.empty_like(x)
        block = triton.next_power_of_2(cols)
        kernel[(rows,)](out, x, x.stride(0), out.stride(0), cols, BLOCK=block, num_warps=min(32, max(4, block // 2048)))
        return out

    def impl(op):
        return softmax if op == "softmax" else None

    return impl


TRITON_MAX_COLS = 65536


def _tensor(torch, a):
    """A NumPy array as a torch CPU tensor sharing its memory (bfloat16 through its bits)."""
    if a.dtype.name == "bfloat16":
        return torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(a)


def discover(device_peers=True):
    """The peers that can run here, CPU ones first."""
    peers = [_gpu_act("cpu", _identity, "cpu", ga.__version__), _compose("numpy", np, _identity, "cpu")]
    sp = _module("scipy.special")
    if sp is not None:
        import scipy

        peers.append(_scipy_like("scipy", sp, _identity, "cpu", scipy.__version__))
    torch = _module("torch")
    if torch is not None:
        from numba import get_num_threads

        torch.set_num_threads(get_num_threads())

        def to_torch(*a):
            return tuple(_tensor(torch, np.ascontiguousarray(v)) for v in a)

        peers.append(_torch(torch, "cpu", to_torch))
    if not device_peers:
        return peers
    backends = [b for b in ga.available_backends() if b != "cpu"]
    cp = _module("cupy") if backends or _module("cupy") else None
    has_cuda_torch = torch is not None and torch.cuda.is_available()
    if cp is not None:
        try:
            cp.cuda.runtime.getDeviceCount()
        except Exception:
            cp = None
    if cp is not None:
        to_dev = lambda *a: tuple(cp.asarray(v) for v in a)  # noqa: E731
    elif has_cuda_torch:
        to_dev = lambda *a: tuple(_tensor(torch, np.ascontiguousarray(v)).cuda() for v in a)  # noqa: E731
    else:
        return peers
    for b in backends:
        peers.append(_gpu_act(b, to_dev, "gpu", ga.__version__))
    if cp is not None:
        peers.append(_compose("cupy", cp, to_dev, "gpu"))
        cupyx_special = _module("cupyx.scipy.special")
        if cupyx_special is not None and hasattr(cupyx_special, "softmax"):
            peers.append(_scipy_like("cupyx", cupyx_special, to_dev, "gpu", cp.__version__))
    if has_cuda_torch:
        to_cuda = lambda *a: tuple(_tensor(torch, np.ascontiguousarray(v)).cuda() for v in a)  # noqa: E731
        peers.append(_torch(torch, "gpu", to_cuda))
        triton = _module("triton")
        if triton is not None:
            peers.append(Peer("triton", "gpu", triton.__version__, to_cuda, _triton_softmax(triton, torch)))
    return peers


@numba.njit(parallel=True, cache=True)
def _parallel_copy(src, dst):
    # on all of Numba's threads, as gpu_act's kernels (np.copyto uses one thread,
    # which does not reach this machine's bandwidth)
    for i in numba.prange(src.shape[0]):
        dst[i] = src[i]


def bandwidth_copy(device, to):
    """A copy callable (src -> dst) for the bandwidth floor on this device."""
    if device == "cpu":
        return _parallel_copy
    return lambda src, dst: dst.__setitem__(slice(None), src)


def applicable(peer, op, shape):
    """False where a peer cannot take this shape (Triton's row in registers)."""
    return not (peer.name == "triton" and shape[-1] > TRITON_MAX_COLS)

