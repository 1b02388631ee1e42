"""What the simulator tests share: a device small enough that every row variant
runs on short rows."""

import importlib

import pytest

from gpu_act import _cuda

_config = importlib.import_module("gpu_act.backends.cuda._config")

# 16 KiB of shared memory per block for the row (plus the kernels' static shared
# memory): block-shared holds float32 rows up to 4096 and float64 rows up to 2048.
# Blocks of at most 64 threads (two warps: the cross-warp reductions still run):
# the simulator runs every thread of a block as a Python thread, and a block of
# 1,024 spends minutes at its barriers in some runs.
SMALL = _cuda.Limits(sm_count=2, max_threads=64, shared_per_block=4096 * 4 + _config.STATIC_SHARED)


@pytest.fixture
def small_device(monkeypatch):
    """The SMALL device in place of the simulator's."""
    monkeypatch.setattr(_cuda, "limits", lambda device_id: SMALL)


@pytest.fixture
def few_threads(monkeypatch):
    """The simulator's device (48 KiB of shared memory per block) with blocks of at
    most 256 threads, for rows long enough to get 1,024."""
    lim = _cuda.limits(0)._replace(max_threads=256)
    monkeypatch.setattr(_cuda, "limits", lambda device_id: lim)
