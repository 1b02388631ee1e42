"""The wheel as a user gets it: built from a copy of the checkout and installed
with its dependencies into a fresh virtual environment, it pulls in only NumPy
and Numba, holds every module and CUDA C source, and runs CPU ops from outside
the source tree. Its metadata declares the extras with bounds that exclude the
known-broken releases and stop below releases CI has not passed on (numba-cuda,
numba-cuda-mlir), and the mlir-cu13 extra resolves (pip --dry-run).

Shared with tests/packaging/test_dockerfile.py: ``ROOT``, ``checkout_copy``, ``run``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from email.parser import Parser
from pathlib import Path

import numpy as np
import pytest
from packaging.requirements import Requirement

import reference
from tolerances import assert_close

from helpers import ROOT

# what a build or an install never needs from the checkout
_NOT_SOURCES = shutil.ignore_patterns(
    ".git", ".venv", "venv*", "shared", "build", "dist", "*.egg-info", "__pycache__", "*.py[cod]",
    "*.nbi", "*.nbc", ".hypothesis", ".pytest_cache")


def checkout_copy(dest: Path) -> Path:
    """A copy of the checkout (tracked and untracked sources), so that pip's
    in-tree build writes its build/ and egg-info there, never into the checkout."""
    shutil.copytree(ROOT, dest, ignore=_NOT_SOURCES)
    return dest


def run(cmd, *, cwd, timeout=900, check=True):
    """Run ``cmd`` with no trace of the test environment's Python (PYTHONPATH,
    an active virtual environment), so a fresh one sees only what it installed."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    if check:
        assert proc.returncode == 0, (
            f"{' '.join(map(str, cmd))} exited {proc.returncode}\n"
            f"--- stdout (tail)\n{proc.stdout[-4000:]}\n--- stderr (tail)\n{proc.stderr[-4000:]}")
    return proc


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("packaging")
    src = checkout_copy(tmp / "src")
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", tmp / "dist", src], cwd=tmp)
    (whl,) = (tmp / "dist").glob("gpu_act-*.whl")
    return whl


@pytest.fixture(scope="module")
def metadata(wheel):
    with zipfile.ZipFile(wheel) as z:
        (name,) = [n for n in z.namelist() if n.endswith(".dist-info/METADATA")]
        return Parser().parsestr(z.read(name).decode())


def _requirements(metadata, extra=None):
    """Requirements of the plain install (extra=None) or of one extra."""
    reqs = [Requirement(r) for r in metadata.get_all("Requires-Dist")]
    if extra is None:
        return [r for r in reqs if r.marker is None]
    return [r for r in reqs if r.marker is not None and r.marker.evaluate({"extra": extra})]


def test_plain_install_requires_only_numpy_and_numba(metadata):
    assert sorted(r.name for r in _requirements(metadata)) == ["numba", "numpy"]


@pytest.mark.parametrize("major", ["12", "13"])
def test_cuda_extra_pairs_numba_cuda_and_cupy_for_its_major(metadata, major):
    reqs = {r.name: r for r in _requirements(metadata, f"cu{major}")}
    assert set(reqs) == {"numba-cuda", "numpy", f"cupy-cuda{major}x", "cuda-toolkit"}
    assert reqs["numba-cuda"].extras == {f"cu{major}"}
    # CuPy's NVRTC compiles find libnvrtc and <cuda_fp16.h> in these wheels, not by accident of numba-cuda's
    assert {"cudart", "nvrtc"} <= reqs["cuda-toolkit"].extras
    assert reqs["cuda-toolkit"].specifier.contains(f"{major}.9") and not reqs["cuda-toolkit"].specifier.contains("14.0")
    # numba-cuda < 0.30.4 fails to import with numba >= 0.66; CuPy 14.0.0 broke numba-cuda
    assert not reqs["numba-cuda"].specifier.contains("0.30.3")
    assert reqs["numba-cuda"].specifier.contains("0.30.4")
    assert not reqs[f"cupy-cuda{major}x"].specifier.contains("14.0.0")
    assert reqs[f"cupy-cuda{major}x"].specifier.contains("14.0.1")
    _assert_numba_cuda_bounded(reqs)


def _assert_numba_cuda_bounded(reqs):
    # numba-cuda is in maintenance mode: below its next minor release until CI
    # has passed on it, and with a NumPy it imports with (0.30 breaks on 2.5)
    assert not reqs["numba-cuda"].specifier.contains("0.31.0")
    assert reqs["numpy"].specifier.contains("2.4.6") and not reqs["numpy"].specifier.contains("2.5.0")


@pytest.mark.parametrize("major", ["12", "13"])
def test_mlir_extra_pairs_numba_cuda_mlir_and_cupy_for_its_major(metadata, major):
    reqs = {r.name: r for r in _requirements(metadata, f"mlir-cu{major}")}
    # no numba-cuda, and no NumPy cap: this is the extra for NumPy >= 2.5
    assert set(reqs) == {"numba-cuda-mlir", f"cupy-cuda{major}x", "cuda-toolkit"}
    assert reqs["numba-cuda-mlir"].extras == {f"cu{major}"}
    # the release CI compiles every kernel with (tests/toolchain/test_mlir_ptx.py), below the next minor (pre-1.0)
    spec = reqs["numba-cuda-mlir"].specifier
    assert spec.contains("0.6.0") and not spec.contains("0.5.4") and not spec.contains("0.7.0")
    assert {"cudart", "nvrtc"} <= reqs["cuda-toolkit"].extras
    assert reqs["cuda-toolkit"].specifier.contains(f"{major}.9") and not reqs["cuda-toolkit"].specifier.contains("14.0")
    assert reqs[f"cupy-cuda{major}x"].specifier.contains("14.0.1")
    assert not reqs[f"cupy-cuda{major}x"].specifier.contains("14.0.0")


def test_mlir_cu13_extra_resolves(tmp_path):
    # mlir-cu12 is installed for real by tests/run.sh (beside cu12); mlir-cu13 is
    # resolved without downloading the CUDA 13 wheels
    src = checkout_copy(tmp_path / "src")
    report = tmp_path / "report.json"
    run([sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--ignore-installed", "--report", report,
         f"{src}[mlir-cu13]"], cwd=tmp_path)
    chosen = {item["metadata"]["name"].lower().replace("_", "-"): item["metadata"]["version"]
              for item in json.loads(report.read_text())["install"]}
    assert chosen["numba-cuda-mlir"].startswith("0.6."), chosen
    assert chosen["cuda-bindings"].split(".")[0] == "13" and "cupy-cuda13x" in chosen, chosen
    assert "numba-cuda" not in chosen and "cupy-cuda12x" not in chosen, chosen


def test_tool_extras_are_declared(metadata):
    assert {"cu12", "cu13", "mlir-cu12", "mlir-cu13", "test", "bench", "dask"} <= set(
        metadata.get_all("Provides-Extra"))
    test = {r.name: r for r in _requirements(metadata, "test")}
    assert {"pytest", "pytest-xdist", "hypothesis", "scipy", "numba-cuda"} <= set(test)
    _assert_numba_cuda_bounded(test)  # the simulator tests' numba-cuda, bounded as in cu12
    assert "matplotlib" in {r.name for r in _requirements(metadata, "bench")}
    assert {"dask", "distributed"} <= {r.name for r in _requirements(metadata, "dask")}


def test_console_script_is_declared(wheel):
    with zipfile.ZipFile(wheel) as z:
        (name,) = [n for n in z.namelist() if n.endswith(".dist-info/entry_points.txt")]
        text = z.read(name).decode()
    assert "gpu-act = gpu_act.cli:main" in text


_CPU_OPS = textwrap.dedent("""
    import json, sys
    from importlib import metadata, resources
    import numpy as np
    import gpu_act as ga
    x = np.load(sys.argv[1])
    np.save(sys.argv[2], ga.softmax(x, axis=0))
    np.save(sys.argv[3], ga.gelu(x))
    kernels = sorted(p.name for p in resources.files("gpu_act.kernels").iterdir())
    print(json.dumps({"file": ga.__file__, "backends": list(ga.available_backends()), "kernels": kernels,
                      "dists": sorted(d.metadata["Name"] for d in metadata.distributions())}))
""")


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory):
    venv = tmp_path_factory.mktemp("wheel-venv") / "venv"
    run([sys.executable, "-m", "venv", venv], cwd=venv.parent)
    return venv


def _dists(venv):
    code = "import json; from importlib import metadata; print(json.dumps(sorted(d.metadata['Name'] for d in metadata.distributions())))"
    return set(json.loads(run([venv / "bin" / "python", "-I", "-c", code], cwd=venv.parent).stdout))


def test_wheel_installs_and_runs_cpu_ops_in_a_fresh_venv(wheel, fresh_venv, tmp_path):
    seeded = _dists(fresh_venv)  # pip (and setuptools on Python < 3.12)
    run([fresh_venv / "bin" / "python", "-m", "pip", "install", "-q", wheel], cwd=tmp_path)

    rng = np.random.default_rng(7)
    x = (rng.standard_normal((33, 5)) * 4).astype(np.float32)
    x[0, 0] = np.inf
    np.save(tmp_path / "x.npy", x)
    script = tmp_path / "ops.py"
    script.write_text(_CPU_OPS)
    # -I and a cwd outside the checkout: the import can only find the installed copy
    out = run([fresh_venv / "bin" / "python", "-I", script, tmp_path / "x.npy", tmp_path / "softmax.npy",
               tmp_path / "gelu.npy"], cwd=tmp_path)
    info = json.loads(out.stdout.strip().splitlines()[-1])

    site = Path(info["file"]).parent
    assert fresh_venv in site.parents, f"gpu_act came from {site}, not the fresh environment"
    assert "cpu" in info["backends"]
    assert_close(np.load(tmp_path / "softmax.npy"), reference.softmax(x, axis=0), np.float32)
    assert_close(np.load(tmp_path / "gelu.npy"), reference.forward("gelu", x), np.float32)

    added = {n.lower().replace("_", "-") for n in set(info["dists"]) - seeded}
    assert {"gpu-act", "numpy", "numba"} <= added <= {"gpu-act", "numpy", "numba", "llvmlite"}, added

    # every module and every CUDA C source of the checkout was installed
    sources = {p.relative_to(ROOT / "gpu_act").as_posix() for p in (ROOT / "gpu_act").rglob("*.py")
               if "__pycache__" not in p.parts}
    installed = {p.relative_to(site).as_posix() for p in site.rglob("*.py") if "__pycache__" not in p.parts}
    assert sources - installed == set(), "modules missing from the installed wheel"
    kernels = sorted(p.name for p in (ROOT / "kernels").iterdir() if p.suffix in (".cu", ".cuh", ".py"))
    assert [k for k in kernels if k not in info["kernels"]] == [], "kernels/ sources missing from the wheel"
