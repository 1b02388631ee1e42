"""pytest configuration and fixtures for the gpu_act test suite."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))

from hypothesis import HealthCheck, settings  # noqa: E402

import gpu_act as ga  # noqa: E402
from helpers import to_backend, to_numpy  # noqa: E402,F401  (re-exported helpers)

# Hypothesis: small, deterministic-enough runs; no example database written to the repo.
settings.register_profile(
    "gpu_act",
    max_examples=50,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# a longer run for manual bug hunting: pytest --hypothesis-profile=gpu_act_long
settings.register_profile("gpu_act_long", parent=settings.get_profile("gpu_act"),
                          max_examples=1000)
settings.load_profile("gpu_act")

BACKENDS = tuple(ga.available_backends())
GPU_BACKENDS = tuple(b for b in BACKENDS if b in ("cuda", "cupy"))


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "gpu: test needs a GPU backend (cuda/cupy); skipped without a device")


def pytest_collection_modifyitems(config, items):
    if GPU_BACKENDS:
        # a test run on a GPU backend through the ``backend`` fixture is a gpu test
        # too: ``-m gpu`` (bench/gpu_check.sh) selects it
        gpu = pytest.mark.gpu
        for item in items:
            params = getattr(getattr(item, "callspec", None), "params", {})
            if params.get("backend") in GPU_BACKENDS or "gpu_backend" in params:
                item.add_marker(gpu)
        return
    skip = pytest.mark.skip(reason="no GPU backend available (gpu_act.available_backends())")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Every backend gpu_act reports as available ("cpu" here; "cuda"/"cupy" on GPUs)."""
    return request.param


@pytest.fixture(params=GPU_BACKENDS or ["<no gpu backend>"])
def gpu_backend(request):
    if not GPU_BACKENDS:
        pytest.skip("no GPU backend available")
    return request.param


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
