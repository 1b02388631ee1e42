"""gpu_act on Dask arrays computed by a dask.distributed LocalCluster of two
worker processes on loopback: tasks pickle to other processes, which compute
their blocks with gpu_act, and the results equal the in-memory ones."""

from __future__ import annotations

import os

import numpy as np
import pytest

pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

from test_dask import CASES, check_case  # noqa: E402

# one op of each Dask code path, in float32 (test_dask.py covers every op and dtype)
OPS = [
    "gelu",
    "gelu_backward",
    "rrelu-train",
    "rrelu_backward-train",
    "prelu-channels",
    "prelu_backward-channels",
    "maxout",
    "maxout_backward",
    "softmax-T0.37-axis1",
    "log_softmax-T1.0-axis0",
    "softmax_backward-T1.0",
    "log_softmax_backward-T0.37",
    "cross_entropy-index-mean-eps0.1",
    "cross_entropy-prob-sum-eps0.0",
    "cross_entropy-index-none-eps0.0",
]


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
    ) as cluster, distributed.Client(cluster) as c:
        yield c


@pytest.mark.parametrize("op", OPS)
def test_op_equals_in_memory_on_cluster(client, op):
    with distributed.get_task_stream(client) as stream:
        check_case(CASES[op], np.float32, lambda arrays: client.compute(list(arrays), sync=True))
    workers = {t["worker"] for t in stream.data}
    assert workers and workers <= set(client.scheduler_info()["workers"])


def test_blocks_run_in_worker_processes(client):
    pids = client.run(os.getpid)
    assert len(pids) == 2 and os.getpid() not in pids.values()
