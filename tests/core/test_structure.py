"""The package's shape: imports go one way, backends stand alone and offer the
interface the public functions call."""

import ast
import importlib
import inspect
import pathlib

import pytest

import gpu_act
from gpu_act import backends

PACKAGE = pathlib.Path(gpu_act.__file__).parent


def _module_name(path):
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path):
    """gpu_act modules ``path`` imports, at module level or inside functions."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "gpu_act"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.split(".")[0] != "gpu_act":
                continue
            for a in node.names:  # "from . import x" names a module x when there is one
                sub = f"{mod}.{a.name}"
                found.add(sub if _is_module(sub) else mod)
    return found - {name}


def _is_module(name):
    rel = pathlib.Path(*name.split(".")[1:])
    return (PACKAGE / rel).with_suffix(".py").exists() or (PACKAGE / rel / "__init__.py").exists()


def _graph():
    return {_module_name(p): _imports(p) for p in PACKAGE.rglob("*.py")}


def test_imports_have_no_cycles():
    graph = _graph()
    state, path = {}, []

    def visit(m):
        state[m] = "open"
        path.append(m)
        for d in sorted(graph.get(m, ())):
            # a package's __init__ is what "import gpu_act.x.y" runs first: count it
            if state.get(d) == "open":
                raise AssertionError("import cycle: " + " -> ".join(path[path.index(d):] + [d]))
            if d not in state:
                visit(d)
        path.pop()
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_backends_never_import_each_other():
    graph = _graph()
    for m, deps in graph.items():
        parts = m.split(".")
        if len(parts) >= 3 and parts[1] == "backends":
            for d in deps:
                dp = d.split(".")
                if len(dp) >= 3 and dp[1] == "backends":
                    assert dp[2] == parts[2], f"{m} imports {d}: backends stand alone"


def test_only_the_cuda_shim_imports_numba_cuda():
    # numba-cuda or numba-cuda-mlir: gpu_act/_cuda.py chooses, the kernels never name either
    for p in PACKAGE.rglob("*.py"):
        text = p.read_text(encoding="utf-8")
        uses = [
            line
            for line in text.splitlines()
            if "import" in line and ("numba_cuda_mlir" in line or ("numba" in line and "cuda" in line))
        ]
        assert not uses or p.name == "_cuda.py", f"{p}: {uses}"


@pytest.mark.parametrize("name", backends.KNOWN)
def test_every_backend_offers_the_interface(name):
    try:
        mod = importlib.import_module(f"gpu_act.backends.{name}")
    except ImportError as e:  # not installed here (CuPy, numba-cuda)
        pytest.skip(f"gpu_act.backends.{name} does not import here: {e}")
    for fn_name, ref in inspect.getmembers(backends.Backend, inspect.isfunction):
        if fn_name.startswith("_"):
            continue
        fn = getattr(mod, fn_name, None)
        assert callable(fn), f"backend {name} lacks {fn_name}"
        want = list(inspect.signature(ref).parameters)[1:]  # without self
        got = list(inspect.signature(fn).parameters)
        assert got == want, f"backend {name}: {fn_name}{tuple(got)}; the interface is {fn_name}{tuple(want)}"
    assert mod.NAME == name
    assert isinstance(mod.BFLOAT16, bool)
