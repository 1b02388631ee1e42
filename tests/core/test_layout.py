"""gpu_act._layout: layouts as (shape, byte strides, item size)."""

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import gpu_act as ga
from gpu_act import _layout


def _brute_force_overlap(shape, strides, itemsize):
    offsets = sorted(sum(i * s for i, s in zip(idx, strides)) for idx in itertools.product(*map(range, shape)))
    return any(b - a < itemsize for a, b in zip(offsets, offsets[1:]))


@given(
    shape=st.lists(st.integers(1, 4), min_size=0, max_size=4),
    strides=st.lists(st.integers(-6, 6), min_size=4, max_size=4),
    itemsize=st.sampled_from([1, 2, 4, 8]),
)
def test_self_overlapping_is_exact(shape, strides, itemsize):
    strides = [s * itemsize // 2 * 2 if itemsize > 1 else s for s in strides[: len(shape)]]
    assert _layout.self_overlapping(shape, strides, itemsize) == _brute_force_overlap(shape, strides, itemsize)


def test_real_layouts_do_not_overlap():
    a = np.empty((5, 6, 7), np.float32)
    for v in (a, a.T, a[::2, ::-1], a[:, 1:4].transpose(1, 0, 2), np.moveaxis(a, 0, -1)[::-1]):
        assert not _layout.self_overlapping(v.shape, v.strides, v.itemsize)
    assert _layout.c_strides((5, 6, 7), 4) == a.strides


def _aliasing_outs():
    """name -> (out, the memory it views)"""
    base = np.zeros(256, np.float32)
    strided = np.lib.stride_tricks.as_strided
    return {
        "stride 0": (strided(base, (6, 6), (0, 4)), base),
        "broadcast": (np.broadcast_to(base[:6], (6, 6)), base),
        "aliasing strides": (strided(base, (6, 6), (4, 4)), base),
        "negative aliasing": (strided(base[40:], (4, 3), (-8, 4)), base),
    }


@pytest.mark.parametrize("name", sorted(_aliasing_outs()))
@pytest.mark.parametrize(
    "call",
    [
        lambda x, o: ga.silu(x, out=o),
        lambda x, o: ga.elu_backward(x, x, out=o),
        lambda x, o: ga.softmax(x, out=o),
        lambda x, o: ga.log_softmax_backward(x, x, axis=0, out=o),
        lambda x, o: ga.prelu(x, np.float32(0.2), out=o),
    ],
    ids=["silu", "elu_backward", "softmax", "log_softmax_backward", "prelu"],
)
def test_out_whose_elements_alias_is_refused_and_nothing_is_written(name, call):
    o, base = _aliasing_outs()[name]
    if not o.flags.writeable:  # a read-only broadcast is refused for that
        with pytest.raises(ValueError, match="read-only"):
            call(np.ones(o.shape, np.float32), o)
        return
    before = base.copy()
    x = np.linspace(-2, 2, o.size, dtype=np.float32).reshape(o.shape)
    with pytest.raises(ValueError, match="out has elements that share memory"):
        call(x, o)
    np.testing.assert_array_equal(base, before)


def test_the_input_may_still_overlap_out():
    # staged through a temporary, as before: only an out that overlaps itself is refused
    x = np.arange(12, dtype=np.float32) - 6
    ga.relu(x[1:], out=x[:-1])
    np.testing.assert_array_equal(x[:-1], np.maximum(np.arange(1, 12) - 6, 0))
