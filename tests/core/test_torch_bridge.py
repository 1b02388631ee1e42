"""gpu_act.torch: the public functions as differentiable PyTorch operators and
the torch.nn drop-in modules.

Gradients are checked with ``torch.autograd.gradcheck`` in float64 (inputs
away from kinks); values and gradients against torch.nn.functional within the
tolerance table; one ``torch.compile(fullgraph=True)`` of a small model per
device; ``swap_modules`` against the torch.nn modules it replaces. Second
derivatives are not provided: every backward operator refuses to be
differentiated, which is checked too. Every test runs on CPU tensors and, on
a machine with a GPU, on CUDA tensors (the ``gpu`` marker).
"""

import copy
import inspect
import os
import subprocess
import sys

import numpy as np
import pytest

from helpers import OP_VARIANTS, ROOT, op_id, op_kinks
from tolerances import assert_close

torch = pytest.importorskip("torch")

import gpu_act  # noqa: E402
import gpu_act.torch as gat  # noqa: E402
from gpu_act._public import FUNCTIONS  # noqa: E402
from gpu_act.registry import ACTIVATIONS, PLAIN  # noqa: E402
from gpu_act.torch import nn as gnn  # noqa: E402
from test_torch_family import opcheck_cases as family_opcheck_cases  # noqa: E402

F = torch.nn.functional


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def device(request):
    if request.param == "cuda" and not torch.cuda.is_available():
        pytest.skip("torch has no CUDA device here")
    return request.param


def _f64(values, device, grad=True):
    return torch.tensor(values, dtype=torch.float64, device=device, requires_grad=grad)


def _gradcheck(fn, *inputs):
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-7, rtol=1e-6)


def _smooth_points(name, params, shape=(2, 8)):
    """Points in [-4, 4] at least 0.2 from the op's kinks, of ``shape``."""
    grid = np.linspace(-3.9, 3.9, 40)
    kinks = np.array(op_kinks(name, params) or [np.inf])
    keep = grid[np.min(np.abs(grid[:, None] - kinks[None, :]), axis=1) >= 0.2]
    return keep[np.linspace(0, len(keep) - 1, np.prod(shape)).astype(int)].reshape(shape)


def test_every_public_function_is_an_operator():
    assert set(gat.FUNCTIONS) == set(FUNCTIONS)
    assert set(gat.__all__) == set(FUNCTIONS) | {"nn"}
    for name in FUNCTIONS:
        assert getattr(gat, name) is gat.FUNCTIONS[name]
    ops = {n for n in dir(torch.ops.gpu_act) if not n.startswith("_")}
    assert set(FUNCTIONS) <= ops


def test_import_gpu_act_does_not_import_torch():
    code = "import sys, gpu_act; gpu_act.softmax([1.0, 2.0]); print('torch' in sys.modules)"
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


# ---------------------------------------------------------------- gradcheck, float64
@pytest.mark.parametrize("name,params", OP_VARIANTS, ids=[op_id(n, p) for n, p in OP_VARIANTS])
def test_gradcheck_activation(device, name, params):
    x = _f64(_smooth_points(name, params), device)
    _gradcheck(lambda x: getattr(gat, name)(x, **params), x)


@pytest.mark.parametrize("training", [False, True])
def test_gradcheck_rrelu(device, training):
    x = _f64(_smooth_points("relu", {}), device)
    # a fixed seed: the same slopes at every evaluation
    _gradcheck(lambda x: gat.rrelu(x, 0.1, 0.4, training=training, seed=7), x)


@pytest.mark.parametrize("channels", [1, 3])
def test_gradcheck_prelu_input_and_weight(device, channels):
    x = _f64(_smooth_points("relu", {}, (2, 3, 2)), device)
    w = _f64(np.linspace(-0.3, 0.6, channels), device)
    _gradcheck(gat.prelu, x, w)


@pytest.mark.parametrize("fn", ["softmax", "log_softmax"])
@pytest.mark.parametrize("dim,temperature", [(-1, 1.0), (0, 0.5)])
def test_gradcheck_softmax_family(device, fn, dim, temperature):
    x = _f64(np.random.default_rng(0).normal(size=(3, 5)), device)
    _gradcheck(lambda x: getattr(gat, fn)(x, dim, temperature=temperature), x)


@pytest.mark.parametrize("dim", [-1, 0])
def test_gradcheck_maxout(device, dim):
    # distinct values: no ties, so the maximum does not move under the FD step
    x = np.random.default_rng(1).permutation(24).reshape(4, 6) / 4.0
    _gradcheck(lambda x: gat.maxout(x, 2, dim), _f64(x if dim == -1 else x.T, device))


CE_OPTIONS = {
    "plain": {},
    "weight+smoothing": {"weight": [0.5, 1.0, 2.0, 1.5, 0.7], "label_smoothing": 0.1},
    "z_loss+softcap": {"z_loss": 1e-2, "softcap": 3.0},
    "all+ignore": {"weight": [0.5, 1.0, 2.0, 1.5, 0.7], "label_smoothing": 0.2, "z_loss": 1e-2, "softcap": 3.0,
                   "ignore_index": 1},
}


def _class_weight(options, device):
    kw = dict(options)
    if "weight" in kw:
        kw["weight"] = torch.tensor(kw["weight"], dtype=torch.float64, device=device)
    return kw


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("options", list(CE_OPTIONS), ids=list(CE_OPTIONS))
def test_gradcheck_cross_entropy(device, options, reduction):
    rng = np.random.default_rng(2)
    z = _f64(2 * rng.normal(size=(4, 5)), device)
    t = torch.tensor([0, 1, 4, 1], device=device)
    kw = _class_weight(CE_OPTIONS[options], device)
    _gradcheck(lambda z: gat.cross_entropy(z, t, reduction=reduction, **kw), z)


def test_gradcheck_cross_entropy_class_dim_and_probabilities(device):
    rng = np.random.default_rng(3)
    # class dim 1 of (N, C, d): the per-row gradient of "none" is scaled along dim 1
    z = _f64(rng.normal(size=(2, 5, 3)), device)
    t = torch.tensor(rng.integers(0, 5, (2, 3)), device=device)
    _gradcheck(lambda z: gat.cross_entropy(z, t, 1, reduction="none", label_smoothing=0.1), z)
    p = torch.tensor(rng.dirichlet(np.ones(5), 4), device=device)
    _gradcheck(lambda z: gat.cross_entropy(z, p, z_loss=1e-2), _f64(rng.normal(size=(4, 5)), device))


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_gradcheck_nll_loss(device, reduction):
    rng = np.random.default_rng(4)
    lp = _f64(-rng.uniform(0.1, 3.0, (4, 5)), device)
    t = torch.tensor([0, 3, 4, 3], device=device)
    w = torch.tensor([0.5, 1.0, 2.0, 1.5, 0.7], dtype=torch.float64, device=device)
    _gradcheck(lambda lp: gat.nll_loss(lp, t, weight=w, reduction=reduction, ignore_index=4), lp)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_gradcheck_binary_cross_entropy(device, reduction):
    rng = np.random.default_rng(5)
    t = torch.tensor(rng.uniform(0, 1, (3, 4)), device=device)
    w = torch.tensor(rng.uniform(0.5, 1.5, (3, 1)), device=device)
    pw = torch.tensor(rng.uniform(0.5, 2.0, 4), device=device)
    z = _f64(2 * rng.normal(size=(3, 4)), device)
    _gradcheck(lambda z: gat.binary_cross_entropy_with_logits(z, t, weight=w, pos_weight=pw, reduction=reduction), z)
    p = _f64(rng.uniform(0.1, 0.9, (3, 4)), device)
    _gradcheck(lambda p: gat.binary_cross_entropy(p, t, weight=w, reduction=reduction), p)


# ---------------------------------------------------------------- first derivatives only
def _first_derivative_cases(device):
    rng = np.random.default_rng(6)
    t = torch.tensor([0, 2, 1], device=device)
    prob = torch.tensor(rng.uniform(0, 1, (3, 4)), device=device)
    w = torch.tensor([0.25], dtype=torch.float64, device=device)
    return {
        "gelu": lambda x: gat.gelu(x),
        "prelu": lambda x: gat.prelu(x, w),
        "rrelu": lambda x: gat.rrelu(x, training=True, seed=3),
        "softmax": lambda x: gat.softmax(x) * torch.arange(4.0, dtype=x.dtype, device=device),
        "log_softmax": lambda x: gat.log_softmax(x),
        "maxout": lambda x: gat.maxout(x, 2),
        "cross_entropy": lambda x: gat.cross_entropy(x, t),
        "nll_loss": lambda x: gat.nll_loss(x, t, reduction="none"),
        "binary_cross_entropy_with_logits": lambda x: gat.binary_cross_entropy_with_logits(x, prob),
        "binary_cross_entropy": lambda x: gat.binary_cross_entropy(torch.sigmoid(x), prob),
    }


@pytest.mark.parametrize("op", list(_first_derivative_cases("cpu")))
def test_double_backward_raises(device, op):
    """Every backward operator refuses to be differentiated: double backward,
    gradgradcheck and Hessians raise instead of returning a wrong (zero) term."""
    fn = _first_derivative_cases(device)[op]
    x = _f64(np.random.default_rng(7).normal(size=(3, 4)), device)
    (g,) = torch.autograd.grad(fn(x).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="not differentiable: gpu_act.torch computes first derivatives only"):
        g.pow(2).sum().backward()


def test_targets_and_weights_get_no_gradient(device):
    z = _f64([[0.5, -1.0, 2.0]], device)
    p = _f64([[0.2, 0.3, 0.5]], device)
    with pytest.raises(RuntimeError, match="gradient with respect to target is not computed"):
        gat.cross_entropy(z, p).backward()
    w = _f64([1.0, 2.0, 3.0], device)
    with pytest.raises(RuntimeError, match="gradient with respect to weight is not computed"):
        gat.cross_entropy(z.detach(), torch.tensor([1], device=device), weight=w).backward()
    pw = _f64([1.0, 2.0, 3.0], device)
    with pytest.raises(RuntimeError, match="gradient with respect to pos_weight is not computed"):
        gat.binary_cross_entropy_with_logits(z, p.detach(), pos_weight=pw).backward()


# ---------------------------------------------------------------- against torch.nn.functional
TORCH = {
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "relu": F.relu,
    "relu6": F.relu6,
    "leaky_relu": F.leaky_relu,
    "elu": F.elu,
    "selu": F.selu,
    "celu": F.celu,
    "gelu": F.gelu,
    "silu": F.silu,
    "swish": lambda x, beta=1.0: x * torch.sigmoid(beta * x),
    "mish": F.mish,
    "softplus": F.softplus,
    "hardsigmoid": F.hardsigmoid,
    "hardswish": F.hardswish,
    "hardtanh": F.hardtanh,
    "softsign": F.softsign,
    "logsigmoid": F.logsigmoid,
}
DTYPES = [torch.float32, torch.float16]


def _numpy(t):
    return t.detach().cpu().numpy()


def _against_torch(ours, theirs, x, dtype):
    """ours(x) and its gradient in ``dtype`` against theirs in float64 from the
    same values, with a random grad_output."""
    x = x.detach().to(dtype, copy=True).requires_grad_()
    x64 = x.detach().double().requires_grad_()
    y, y64 = ours(x), theirs(x64)
    g = torch.randn(y.shape, generator=torch.Generator().manual_seed(0)).to(dtype=dtype, device=x.device)
    y.backward(g)
    y64.backward(g.double())
    np_dtype = _numpy(x).dtype
    assert y.dtype == dtype and y.shape == y64.shape
    assert_close(_numpy(y), _numpy(y64), np_dtype, msg="value")
    assert_close(_numpy(x.grad), _numpy(x64.grad), np_dtype, msg="gradient")


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name,params", OP_VARIANTS, ids=[op_id(n, p) for n, p in OP_VARIANTS])
def test_activation_matches_torch(device, dtype, name, params):
    x = torch.empty(256).uniform_(-8, 8, generator=torch.Generator().manual_seed(3)).to(device)
    _against_torch(lambda x: getattr(gat, name)(x, **params), lambda x: TORCH[name](x, **params), x, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_prelu_and_rrelu_match_torch(device, dtype):
    x = torch.randn(4, 3, 5, device=device)
    w = torch.tensor([0.1, -0.2, 0.3], device=device)
    _against_torch(lambda x: gat.prelu(x, w.to(dtype)), lambda x: F.prelu(x, w.double()), x, dtype)
    _against_torch(lambda x: gat.rrelu(x, 0.1, 0.3), lambda x: F.rrelu(x, 0.1, 0.3), x, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("fn", ["softmax", "log_softmax"])
@pytest.mark.parametrize("dim,temperature", [(-1, 1.0), (1, 0.7)])
def test_softmax_family_matches_torch(device, dtype, fn, dim, temperature):
    x = 3 * torch.randn(4, 33, 6, device=device)
    _against_torch(lambda x: getattr(gat, fn)(x, dim, temperature=temperature),
                   lambda x: getattr(F, fn)(x / temperature, dim), x, dtype)


def test_losses_match_torch(device):
    dtype = torch.float32
    rng = torch.Generator().manual_seed(1)
    z = torch.randn(6, 7, 3, generator=rng).to(device)
    t = torch.randint(0, 7, (6, 3), generator=rng).to(device)
    t[0, 0] = 2
    w = torch.rand(7, generator=rng).to(device) + 0.5
    for reduction in ("mean", "none"):
        kw = dict(weight=w, ignore_index=2, reduction=reduction)
        _against_torch(lambda z: gat.cross_entropy(z, t, 1, label_smoothing=0.1, **kw),
                       lambda z: F.cross_entropy(z, t, label_smoothing=0.1, **{**kw, "weight": w.double()}), z, dtype)
        _against_torch(lambda z: gat.nll_loss(z, t, 1, **kw),
                       lambda z: F.nll_loss(z, t, **{**kw, "weight": w.double()}), z, dtype)
    p = torch.rand(6, 7, generator=rng).to(device)
    pw = torch.rand(7, generator=rng).to(device) + 0.5
    _against_torch(lambda z: gat.binary_cross_entropy_with_logits(z, p, weight=w, pos_weight=pw),
                   lambda z: F.binary_cross_entropy_with_logits(z, p.double(), weight=w.double(),
                                                                pos_weight=pw.double()), z[:, :, 0], dtype)
    _against_torch(lambda q: gat.binary_cross_entropy(q, p, weight=w, reduction="sum"),
                   lambda q: F.binary_cross_entropy(q, p.double(), weight=w.double(), reduction="sum"),
                   torch.rand(6, 7, generator=rng).to(device) * 0.9 + 0.05, dtype)


def test_outputs_are_fresh_and_errors_pass_through(device):
    x = torch.randn(3, 4, device=device, requires_grad=True)
    y = gat.relu(x)
    assert y.data_ptr() != x.data_ptr() and y.is_contiguous()
    assert gat.gelu(x.t(), "tanh").is_contiguous()
    with pytest.raises(ValueError, match="approximate"):
        gat.gelu(x, approximate="fast")
    with pytest.raises(TypeError, match="unexpected keyword argument 'alpha'"):
        gat.relu(x, alpha=1.0)
    with pytest.raises(TypeError, match="requires grad.*gpu_act.torch"):
        gpu_act.relu(x)


def _opcheck_cases(device):
    """(operator, arguments) for every operator of the "gpu_act" namespace; the
    backward operators get inputs that do not require grad (they refuse to be
    differentiated), so do the loss-only ones (called only when nothing does)."""
    rng = np.random.default_rng(8)
    x = _f64(rng.normal(size=(3, 4)), device)
    g = _f64(rng.normal(size=(3, 4)), device, grad=False)
    p = torch.tensor(rng.uniform(0.1, 0.9, (3, 4)), device=device)
    t = torch.tensor([0, 2, 1], device=device)
    w = torch.tensor(rng.uniform(0.5, 1.5, 4), device=device)
    ops = torch.ops.gpu_act
    cases = []
    for name in PLAIN:
        defaults = [param.default for param in ACTIVATIONS[name].params]
        cases += [(getattr(ops, name), (x, *defaults)), (getattr(ops, name + "_backward"), (g, x.detach(), *defaults))]
    ce = (t, -1, w, "none", 1, 0.1, 1e-2, 5.0)
    return cases + [
        (ops.prelu, (x, _f64([0.2, 0.1, -0.1, 0.3], device))),
        (ops.prelu_backward, (g, x.detach(), w[:1])),
        (ops.rrelu, (x, 0.1, 0.3, True, torch.tensor(5))),
        (ops.rrelu, (x, 0.1, 0.3, False, None)),
        (ops.rrelu_backward, (g, x.detach(), 0.1, 0.3, True, torch.tensor(5))),
        (ops.softmax, (x, 0, 0.5)),
        (ops.log_softmax, (x, -1, 1.0)),
        (ops.softmax_backward, (g, p, 0, 0.5)),
        (ops.log_softmax_backward, (g, p.log(), -1, 1.0)),
        (ops.maxout, (x, 2, -1)),
        (ops.maxout, (x, 3, 0)),
        (ops.maxout_backward, (g[:1], x.detach(), 3, 0)),
        (ops.cross_entropy_with_grad, (x, *ce)),
        (ops.cross_entropy_with_grad, (x, p, 1, None, "mean", -100, 0.0, 0.0, None)),
        (ops.cross_entropy, (x.detach(), *ce)),
        (ops.nll_loss_with_grad, (x, t, 1, w, "none", -100)),
        (ops.nll_loss, (x.detach(), t, 1, None, "sum", 2)),
        (ops.binary_cross_entropy_with_logits_with_grad, (x, p, None, w, "none")),
        (ops.binary_cross_entropy_with_logits, (x.detach(), p, w, None, "sum")),
        (ops.binary_cross_entropy_with_grad, (p.clone().requires_grad_(), p.flip(0), None, "mean")),
        (ops.binary_cross_entropy, (p, p.flip(0), w, "none")),
        (ops.loss_backward, (g, g[0, 0], None)),
        (ops.loss_backward, (g, g[:, 0], 1)),
    ]


def test_opcheck_every_operator(device):
    """torch.library.opcheck: schema, fake (meta) implementation against the
    real one, autograd registration and AOT dispatch, for every operator."""
    cases = _opcheck_cases(device) + family_opcheck_cases(device)
    names = {op._qualified_op_name for op, _ in cases}
    assert names == {f"gpu_act::{n}" for n in dir(torch.ops.gpu_act) if not n.startswith("_") and n != "name"}
    for op, args in cases:
        torch.library.opcheck(op, args)


# ---------------------------------------------------------------- torch.compile
class _Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.l1 = torch.nn.Linear(8, 16)
        self.act = gnn.GELU("tanh")
        self.prelu = gnn.PReLU(16)
        self.l2 = torch.nn.Linear(8, 5)
        self.loss = gnn.CrossEntropyLoss(label_smoothing=0.1)

    def forward(self, x, t):
        h = gat.maxout(self.prelu(self.act(self.l1(x))), 2)
        z = self.l2(gat.silu(h))
        aux = gat.binary_cross_entropy_with_logits(z, gat.softmax(z).detach())
        return self.loss(z, t) + aux + gat.log_softmax(z, temperature=2.0).mean()


def test_compile_fullgraph_forward_and_backward(device):
    torch.manual_seed(0)
    net = _Net().to(device)
    x, t = torch.randn(6, 8, device=device), torch.tensor([0, 1, 2, 3, 4, 0], device=device)
    eager = net(x, t)
    eager.backward()
    grads = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    compiled = torch.compile(net, fullgraph=True)(x, t)
    compiled.backward()
    assert_close(_numpy(compiled), _numpy(eager).astype(np.float64), np.float32)
    for g, p in zip(grads, net.parameters()):
        assert_close(_numpy(p.grad), _numpy(g).astype(np.float64), np.float32)


# ---------------------------------------------------------------- modules
def test_module_defaults_match_torch_nn():
    for theirs, ours in gnn.SWAPS.items():
        mine = inspect.signature(ours).parameters
        for name, p in inspect.signature(theirs).parameters.items():
            if name in mine:
                assert mine[name].default == p.default, (ours.__name__, name)
    assert {cls.__name__ for cls in gnn.SWAPS.values()} >= {
        "Softmax", "LogSoftmax", "ReLU", "GELU", "SiLU", "Mish", "ELU", "LeakyReLU", "Softplus", "Hardswish",
        "Hardsigmoid", "Hardtanh", "Tanh", "Sigmoid", "SELU", "CELU", "ReLU6", "Softsign", "LogSigmoid", "PReLU",
        "RReLU", "CrossEntropyLoss", "NLLLoss", "BCEWithLogitsLoss", "BCELoss"}
    assert all(hasattr(gnn, gnn._CLASS_NAMES[name]) for name in PLAIN)


def _torch_modules(device):
    """(torch.nn module with non-default settings, its inputs) for every class
    swap_modules replaces; the first input is the one differentiated."""
    rng = torch.Generator().manual_seed(2)
    x = 3 * torch.randn(4, 3, 5, generator=rng).to(device)
    settings = {}
    for name, params in OP_VARIANTS:
        settings.setdefault(name, params)
    cases = []
    for name in PLAIN:
        cls = getattr(torch.nn, gnn._CLASS_NAMES[name], None)
        if cls is not None:
            kw = dict(settings[name])
            if "inplace" in inspect.signature(cls).parameters:
                kw["inplace"] = True
            cases.append((cls(**kw), (x,)))
    w = torch.rand(3, generator=rng).to(device) + 0.5
    t = torch.randint(0, 3, (4, 5), generator=rng).to(device)
    p = torch.rand(4, 3, 5, generator=rng).to(device)
    cases += [
        (torch.nn.Softmax(dim=1), (x,)),
        (torch.nn.LogSoftmax(dim=0), (x,)),
        (torch.nn.PReLU(3, init=0.1).to(device), (x,)),
        (torch.nn.RReLU(0.1, 0.3).eval(), (x,)),
        (torch.nn.CrossEntropyLoss(w, ignore_index=2, reduction="sum", label_smoothing=0.05), (x, t)),
        (torch.nn.NLLLoss(w, reduction="none"), (x, t)),
        (torch.nn.BCEWithLogitsLoss(w[:, None], pos_weight=w[0, None]), (x, p)),
        (torch.nn.BCELoss(reduction="sum"), (torch.sigmoid(x), p)),
    ]
    return cases


def test_every_swapped_module_matches_torch_nn(device):
    cases = _torch_modules(device)
    assert {type(m) for m, _ in cases} == set(gnn.SWAPS)
    for module, (x, *rest) in cases:
        reference = copy.deepcopy(module).double()
        ours = gnn.swap_modules(module)
        assert type(ours) is gnn.SWAPS[type(module)]
        assert ours.training == module.training
        for mine, theirs_ in ((ours.parameters(), module.parameters()), (ours.buffers(), module.buffers())):
            mine, theirs_ = list(mine), list(theirs_)
            assert len(mine) == len(theirs_) and all(a is b for a, b in zip(mine, theirs_))
        before = x.clone()

        def theirs(x):
            return reference(x.clone(), *(r.double() if r.is_floating_point() else r for r in rest))

        _against_torch(lambda x: ours(x, *rest), theirs, x, torch.float32)
        assert torch.equal(x, before), f"{type(ours).__name__} wrote its input"


def test_swapped_mlp_trains_like_torch(device):
    torch.manual_seed(0)
    model = torch.nn.ModuleDict({
        "net": torch.nn.Sequential(
            torch.nn.Linear(10, 32), torch.nn.GELU(), torch.nn.Linear(32, 32), torch.nn.SiLU(),
            torch.nn.Linear(32, 16), torch.nn.PReLU(16), torch.nn.Linear(16, 6), torch.nn.LogSoftmax(dim=-1),
        ),
        "loss": torch.nn.NLLLoss(weight=torch.rand(6) + 0.5),
    }).to(device)
    reference = copy.deepcopy(model).double()
    params = list(model.parameters())
    assert gnn.swap_modules(model) is model
    assert [type(m).__module__ for m in model["net"]][1::2] == ["gpu_act.torch.nn"] * 4
    assert list(model.parameters()) == params  # the same Parameter objects
    x = torch.randn(32, 10, device=device)
    t = torch.randint(0, 6, (32,), device=device)
    loss = model["loss"](model["net"](x), t)
    ref = reference["loss"](reference["net"](x.double()), t)
    loss.backward()
    ref.backward()
    assert_close(_numpy(loss), _numpy(ref), np.float32)
    for (name, p), q in zip(model.named_parameters(), reference.parameters()):
        assert_close(_numpy(p.grad), _numpy(q.grad), np.float32, msg=name)


def test_rrelu_module_draws_new_slopes_in_training(device):
    m = gnn.RReLU().to(device)
    x = -torch.ones(1000, device=device)
    torch.manual_seed(1)
    a, b = m(x), m(x)
    torch.manual_seed(1)
    assert torch.equal(m(x), a)
    assert not torch.equal(a, b)
    assert bool(((-a >= 1 / 8) & (-a <= 1 / 3)).all())
    m.eval()
    assert torch.allclose(m(x), torch.full_like(x, -(1 / 8 + 1 / 3) / 2))
