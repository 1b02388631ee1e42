"""What the simulator tests share: a device small enough that every row variant
runs on short rows."""

import importlib

import pytest

from gpu_act import _cuda

_config = importlib.import_module("gpu_act.backends.cuda._config")

# 16 KiB of shared memory per block for the row (plus the kernels' static shared
# memory): block-shared holds float32 rows up to 4096 and float64 rows up to 2048
SMALL = _cuda.Limits(sm_count=2, max_threads=1024, shared_per_block=4096 * 4 + _config.STATIC_SHARED)


@pytest.fixture
def small_device(monkeypatch):
    """The SMALL device in place of the simulator's."""
    monkeypatch.setattr(_cuda, "limits", lambda device_id: SMALL)
