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


def test_sequential_upload_packs_like_cuda_and_download_copies_out():
    """The CPU runs the CUDA path's packing (one buffer, views of it): every CPU test covers it."""
    ops = Sequential()
    ids = np.arange(6, dtype=np.int64).reshape(2, 3)
    mask = np.array([[True, False, True], [True, True, False]])
    upload = ops.upload([ids, mask])
    assert upload.ready is None  # nothing to wait for on the CPU
    for tensor, array in zip(upload.tensors, [ids, mask], strict=True):
        assert tensor.untyped_storage().data_ptr() == upload.buffer.untyped_storage().data_ptr()
        np.testing.assert_array_equal(tensor.numpy(), array)
    out = ops.download(upload.tensors[0])
    assert not np.shares_memory(out, upload.tensors[0].numpy())  # outlives the batch's buffer
    np.testing.assert_array_equal(out, ids)
