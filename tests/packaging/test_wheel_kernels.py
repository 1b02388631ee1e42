"""Packaging: the wheel ships the CUDA C sources (top-level kernels/ as the
package gpu_act.kernels), and an installed, non-editable copy finds them."""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from helpers import ROOT


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    # build from a copy so the checkout gets no build/ or egg-info
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.nbi", "*.nbc")
    for name in ("gpu_act", "kernels"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    dist = tmp_path_factory.mktemp("dist")
    # isolated build, as `pip install .` does: the build backend comes from [build-system]
    r = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(src)],
        capture_output=True, text=True,
    )
    assert r.returncode == 0, f"building the wheel failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    (whl,) = dist.glob("gpu_act-*.whl")
    return whl


def test_wheel_contains_every_kernel_source(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    sources = sorted(p.name for p in (ROOT / "kernels").iterdir() if p.suffix in (".cu", ".cuh"))
    assert sources, "kernels/ holds no .cu/.cuh files"
    missing = [s for s in sources if f"gpu_act/kernels/{s}" not in names]
    assert not missing, f"the wheel lacks kernels: {missing}"
    assert "gpu_act/kernels/__init__.py" in names


def test_wheel_contains_every_package(wheel):
    # packages are listed in pyproject.toml: a new one must be added there
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = sorted(
        p.relative_to(ROOT).as_posix() for p in (ROOT / "gpu_act").rglob("*.py") if "__pycache__" not in p.parts
    )
    missing = [m for m in modules if m not in names]
    assert not missing, f"the wheel lacks modules (add their package to [tool.setuptools] packages): {missing}"


def test_installed_wheel_finds_its_kernels(wheel, tmp_path):
    site = tmp_path / "site"
    r = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-compile", "-q", "--target", str(site), str(wheel)],
        capture_output=True, text=True,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    code = (
        "import gpu_act.kernels as k, sys; "
        "print(k.__file__); "
        "s = k.source('softmax.cu'); "
        "assert 'softmax_fwd' in s and 'struct MaxSum' in s and '#include \"' not in s; "
        "print(len(k.source(k.ACTIVATIONS)))"
    )
    env = dict(os.environ, PYTHONPATH=str(site))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    path = Path(r.stdout.splitlines()[0])
    assert site in path.parents, f"gpu_act.kernels came from {path}, not the installed wheel in {site}"
