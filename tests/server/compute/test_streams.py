"""The staging layout behind the one host-to-device copy per batch (packing runs on the CPU; the
pinned buffer and the copy itself need CUDA and are exercised by gpu_check)."""

from __future__ import annotations

import numpy as np
import torch

from solution.server.compute.streams import ALIGN, Sequential, layout, pack, unpack


def test_arrays_packed_into_one_buffer_come_back_as_views_of_their_own_shape_and_dtype():
    rng = np.random.default_rng(0)
    arrays = [
        rng.integers(0, 250_000, size=(3, 7), dtype=np.int64),
        rng.random((3, 7)) > 0.5,  # a boolean mask: 21 bytes, so the next one must be realigned
        np.array([4, 0, 2], dtype=np.int64),
        rng.random((2, 5), dtype=np.float32),
    ]
    offsets, total = layout(arrays)
    assert all(o % ALIGN == 0 for o in offsets) and total % ALIGN == 0
    assert offsets[2] - offsets[1] == 24  # 21 bytes rounded up
    buffer = torch.full((total,), 255, dtype=torch.uint8)
    pack(arrays, offsets, buffer)
    copied = buffer.clone()  # what the device receives
    views = unpack(copied, arrays, offsets)
    for view, array in zip(views, arrays, strict=True):
        assert view.shape == array.shape
        assert view.data_ptr() >= copied.data_ptr()  # a view of the copy, not a new tensor
        np.testing.assert_array_equal(view.numpy(), array)


def test_sequential_upload_and_download_make_no_copy_on_the_way_in():
    ops = Sequential()
    ids = np.arange(6, dtype=np.int64).reshape(2, 3)
    [tensor] = ops.upload([ids])
    assert tensor.numpy().base is ids or np.shares_memory(tensor.numpy(), ids)
    out = ops.download(tensor)
    assert not np.shares_memory(out, ids)  # the host result outlives the batch's buffers
    np.testing.assert_array_equal(out, ids)
