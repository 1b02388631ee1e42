"""gpu_act.torch operators of logsumexp, softmin, the gated linear units and
the mask= of the softmax family and cross_entropy: float64 gradcheck,
torch.library.opcheck, and values and gradients against PyTorch's own."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import gpu_act.torch as gat  # noqa: E402
from tolerances import assert_close  # noqa: E402

ops = torch.ops.gpu_act


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def device(request):
    if request.param == "cuda" and not torch.cuda.is_available():
        pytest.skip("torch has no CUDA device here")
    return request.param


def _f64(values, device, grad=True):
    return torch.tensor(values, dtype=torch.float64, device=device, requires_grad=grad)


def _gradcheck(fn, *inputs):
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-7, rtol=1e-6)


def _x(device, shape=(3, 5), seed=0):
    return _f64(np.random.default_rng(seed).normal(size=shape), device)


@pytest.mark.parametrize("dim", [-1, 0])
def test_gradcheck_sparsemax(device, dim):
    # rows of 3 N(0, 1) values: no entry within gradcheck's step of tau (a kink)
    _gradcheck(lambda x: gat.sparsemax(x, dim), _x(device) * 3)


@pytest.mark.parametrize("dim,keepdims,temperature", [(-1, False, 1.0), (0, True, 0.5)])
def test_gradcheck_logsumexp(device, dim, keepdims, temperature):
    _gradcheck(lambda x: gat.logsumexp(x, dim, keepdims=keepdims, temperature=temperature), _x(device))


@pytest.mark.parametrize("dim,temperature", [(-1, 1.0), (0, 0.5)])
def test_gradcheck_softmin(device, dim, temperature):
    _gradcheck(lambda x: gat.softmin(x, dim, temperature=temperature), _x(device))


def test_values_and_gradients_match_torch(device):
    x = _x(device, (4, 6), seed=1)
    for ours, theirs in ((lambda v: gat.logsumexp(v, 0), lambda v: torch.logsumexp(v, 0)),
                         (lambda v: gat.softmin(v, 1), lambda v: torch.nn.functional.softmin(v, 1))):
        a, b = x.detach().clone().requires_grad_(), x.detach().clone().requires_grad_()
        ya, yb = ours(a), theirs(b)
        g = torch.linspace(-1.0, 2.0, ya.numel(), dtype=torch.float64, device=device).reshape(ya.shape)
        ya.backward(g)
        yb.backward(g)
        assert_close(ya.detach().cpu().numpy(), yb.detach().cpu().numpy(), np.float64)
        assert_close(a.grad.cpu().numpy(), b.grad.cpu().numpy(), np.float64)


def test_double_backward_raises(device):
    x = _x(device)
    for fn in (lambda v: gat.logsumexp(v), lambda v: gat.softmin(v) * torch.arange(5.0, device=device)):
        (g,) = torch.autograd.grad(fn(x).sum(), x, create_graph=True)
        with pytest.raises(RuntimeError, match="not differentiable"):
            g.pow(2).sum().backward()


@pytest.mark.parametrize("fn", [
    lambda x: gat.glu(x, -1),
    lambda x: gat.glu(x, 0, activation="softplus", beta=2.0),
    lambda x: gat.geglu(x, approximate="tanh"),
    lambda x: gat.swiglu(x, 0),
    lambda x: gat.reglu(x),
], ids=["glu", "glu-softplus", "geglu-tanh", "swiglu-dim0", "reglu"])
def test_gradcheck_glu(device, fn):
    x = _f64(np.random.default_rng(3).normal(size=(4, 6)) + 0.05, device)  # away from relu's kink
    _gradcheck(fn, x)


def test_glu_matches_torch(device):
    x = _x(device, (4, 6), seed=4)
    a, b = x.detach().clone().requires_grad_(), x.detach().clone().requires_grad_()
    ya, yb = gat.glu(a, 1), torch.nn.functional.glu(b, 1)
    ya.sum().backward()
    yb.sum().backward()
    assert_close(ya.detach().cpu().numpy(), yb.detach().cpu().numpy(), np.float64)
    assert_close(a.grad.cpu().numpy(), b.grad.cpu().numpy(), np.float64)
    with pytest.raises(TypeError, match="unexpected keyword argument 'beta'"):
        gat.glu(x, activation="relu", beta=1.0)
    with pytest.raises(ValueError, match="activation"):
        gat.glu(x, activation="prelu")


def _mask(device, shape=(3, 5), seed=6):
    m = np.random.default_rng(seed).random(shape) > 0.3
    m[:, 0] = True
    return torch.tensor(m, device=device)


@pytest.mark.parametrize("fn", [
    lambda x, m: gat.softmax(x, -1, mask=m),
    lambda x, m: gat.log_softmax(x, 0, temperature=0.7, mask=m[:, :1]),
    lambda x, m: gat.logsumexp(x, 1, mask=m),
    lambda x, m: gat.cross_entropy(x, torch.zeros(3, dtype=torch.int64, device=x.device), mask=m,
                                   label_smoothing=0.1),
], ids=["softmax", "log_softmax-dim0", "logsumexp", "cross_entropy"])
def test_gradcheck_with_mask(device, fn):
    m = _mask(device)
    # masked entries of the outputs are constants (0, -inf): differentiate the unmasked ones
    _gradcheck(lambda x: torch.nan_to_num(fn(x, m), neginf=0.0), _x(device))


def test_masked_softmax_matches_torch_on_filled_logits(device):
    x, m = _x(device, (3, 5), seed=7), _mask(device)
    a, b = x.detach().clone().requires_grad_(), x.detach().clone().requires_grad_()
    ya = gat.softmax(a, mask=m)
    yb = torch.softmax(b.masked_fill(~m, float("-inf")), -1)
    g = torch.linspace(-1.0, 2.0, 15, dtype=torch.float64, device=device).reshape(3, 5)
    ya.backward(g)
    yb.backward(g)
    assert_close(ya.detach().cpu().numpy(), yb.detach().cpu().numpy(), np.float64)
    assert_close(a.grad.cpu().numpy(), b.grad.cpu().numpy(), np.float64)


def opcheck_cases(device):
    """(operator, arguments) of every operator this family adds."""
    x = _x(device)
    g = _x(device, seed=2).detach()
    p = torch.softmax(-x.detach(), -1)
    r = gat.logsumexp(x.detach(), 0, keepdims=True)
    x6 = _x(device, (3, 6), seed=5)
    g3 = x6.detach()[:, :3]
    return [
        (ops.softmin, (x, -1, 0.5)),
        (ops.softmin_backward, (g, p, -1, 0.5)),
        (ops.logsumexp, (x, 0, True, 1.0)),
        (ops.logsumexp, (x, -1, False, 2.0)),
        (ops.logsumexp_backward, (g[:1], x.detach(), r, 0, True, 1.0)),
        (ops.glu, (x6, 1, "softplus", [2.0, 20.0], [])),
        (ops.glu, (x6, -1, "gelu", [], ["tanh"])),
        (ops.glu_backward, (g3, x6.detach(), 1, "sigmoid", [], [])),
        (ops.swiglu, (x6, 1)),
        (ops.swiglu_backward, (g3, x6.detach(), 1)),
        (ops.geglu, (x6, 1, "none")),
        (ops.geglu_backward, (g3, x6.detach(), 1, "tanh")),
        (ops.reglu, (x6, -1)),
        (ops.reglu_backward, (g3, x6.detach(), -1)),
        (ops.sparsemax, (x, -1)),
        (ops.sparsemax_backward, (g, torch.relu(x.detach() - 0.5), 0)),
    ]


def mask_opcheck_cases(device):
    """(operator, arguments) of the masked forms of the existing operators."""
    x = _x(device)
    g = _x(device, seed=2).detach()
    m = _mask(device)
    p = gat.softmax(x.detach(), mask=m)
    r = gat.logsumexp(x.detach(), 1, mask=m)
    t = torch.zeros(3, dtype=torch.int64, device=device)
    return [
        (ops.softmax, (x, -1, 1.0, m)),
        (ops.log_softmax, (x, 0, 0.5, m[:, :1])),
        (ops.softmax_backward, (g, p, -1, 1.0, m)),
        (ops.log_softmax_backward, (g, p, -1, 1.0, m)),
        (ops.logsumexp, (x, 1, False, 1.0, m)),
        (ops.logsumexp_backward, (g[:, 0], x.detach(), r, 1, False, 1.0, m)),
        (ops.cross_entropy_with_grad, (x, t, 1, None, "mean", -100, 0.1, 0.0, None, m)),
        (ops.cross_entropy, (x.detach(), t, 1, None, "none", -100, 0.0, 0.0, None, m)),
    ]


def test_opcheck(device):
    for op, args in opcheck_cases(device) + mask_opcheck_cases(device):
        torch.library.opcheck(op, args)
