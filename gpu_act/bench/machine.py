"""A description of the machine the figures come from."""

import importlib
import os
import platform
import subprocess


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _gpu():
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=20, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return out or None


def _version(name):
    try:
        return importlib.import_module(name).__version__
    except Exception:
        return None


def describe():
    from numba import get_num_threads, threading_layer

    try:
        layer = threading_layer()
    except ValueError:  # no parallel kernel has run yet
        layer = None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": _cpu_model(),
        "cores": cores,
        "numba_threads": get_num_threads(),
        "numba_threading_layer": layer,
        "gpu": _gpu(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {n: _version(n) for n in ("gpu_act", "numpy", "numba", "scipy", "torch", "cupy", "triton")},
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }
