"""`import gpu_act` must not import cupy / numba.cuda nor initialise CUDA."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from helpers import ROOT

PROBE = textwrap.dedent("""
    import json, sys
    # modules the interpreter loaded before gpu_act (site .pth files may load
    # some: cuda-bindings 12 imports the `cuda` namespace package at start-up)
    before = set(sys.modules)
    import gpu_act
    mods = sorted(m for m in set(sys.modules) - before
                  if m == "cupy" or m.startswith("cupy.") or m.startswith("cupy_")
                  or m == "numba.cuda" or m.startswith("numba.cuda.")
                  or m.startswith("cuda") or m == "pycuda" or m.startswith("pycuda."))
    libs = []
    try:
        with open("/proc/self/maps") as f:
            libs = sorted({line.split()[-1] for line in f
                           if "libcuda" in line or "libnvrtc" in line or "libcudart" in line})
    except OSError:
        libs = None
    print(json.dumps({"mods": mods, "libs": libs,
                      "has_api": callable(getattr(gpu_act, "softmax", None))}))
""")


def _run(code):
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_import_is_lazy():
    info = _run(PROBE)
    assert info["has_api"]
    assert info["mods"] == [], f"import gpu_act imported {info['mods']}"
    if info["libs"] is not None:  # Linux: no CUDA driver/runtime library mapped
        assert info["libs"] == [], f"import gpu_act loaded {info['libs']}"
