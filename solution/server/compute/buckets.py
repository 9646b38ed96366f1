"""Shape buckets for CUDA graphs, as pure functions: which shapes are captured, which captured
shape a forward call is padded to, and how it is padded.

A CUDA graph replays fixed shapes from fixed buffers, so a call of ``rows x length`` tokens runs
in the graph of the smallest captured ``(batch, length)`` that holds it. Its real rows come
first, right-padded and masked past their own length; the rows after them are dummy rows. No row
is ever fully masked: SDPA's softmax over a row of all-masked keys is NaN, so a dummy row keeps
its first position. Nothing here needs a GPU, so every rule is tested on the CPU.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

Shape = tuple[int, int]  # (batch rows, tokens per row)


@dataclass(frozen=True)
class BucketGrid:
    """The shapes worth a graph. Powers of two in rows bound row padding to 2x; lengths step by
    about 1.5x, since tweets cluster at 20-100 tokens."""

    batch_sizes: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128)
    lengths: tuple[int, ...] = (16, 32, 48, 64, 96, 128, 192, 256, 384, 512)
    # Largest captured rows x length. Beyond it a forward is compute-bound even on a T4 (its GPU
    # time exceeds the ~3 ms of Python an eager forward costs), so a graph saves little there.
    max_tokens: int = 8192
    # A call pays for its bucket's padding: a graph is used only while the bucket's tokens stay
    # within ``slack`` x the call's own padded tokens, or under ``free_tokens``, where the GPU
    # time is launch-bound and padding costs next to nothing.
    slack: float = 1.5
    free_tokens: int = 2048

    def shapes(self, max_rows: int, max_length: int) -> list[Shape]:
        """Shapes to capture, cheapest first (so a budget that runs out keeps the small,
        launch-bound shapes, where graphs matter most). ``max_rows``/``max_length`` cap the grid:
        the largest call the planner can make (a final bucket at the cap itself is added)."""
        rows = sorted({b for b in self.batch_sizes if b < max_rows} | {max_rows})
        lengths = sorted({n for n in self.lengths if n < max_length} | {max_length})
        grid = [(b, n) for b in rows for n in lengths if b * n <= self.max_tokens]
        return sorted(grid, key=lambda s: (s[0] * s[1], s[1]))


def choose(rows: int, length: int, available: Iterable[Shape], grid: BucketGrid) -> Shape | None:
    """The captured shape a ``rows x length`` call runs in, or None: run it eager (too large,
    or the padding would cost more than the graph saves)."""
    fits = [s for s in available if s[0] >= rows and s[1] >= length]
    if not fits:
        return None
    best = min(fits, key=lambda s: (s[0] * s[1], s[1]))
    tokens = best[0] * best[1]
    if tokens <= grid.free_tokens or tokens <= grid.slack * rows * length:
        return best
    return None


def pad_call(
    input_ids: np.ndarray, attention_mask: np.ndarray, shape: Shape, pad_id: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, mask)`` of ``shape``: the call's rows first (``0..rows-1`` are the real ones), then
    dummy rows of pad ids with only their first position unmasked. ``mask`` is boolean."""
    rows, length = input_ids.shape
    if rows > shape[0] or length > shape[1]:
        raise ValueError(f"a {rows}x{length} call does not fit the {shape[0]}x{shape[1]} bucket")
    ids = np.full(shape, pad_id, dtype=np.int64)
    mask = np.zeros(shape, dtype=np.bool_)
    ids[:rows, :length] = input_ids
    mask[:rows, :length] = attention_mask != 0
    mask[rows:, 0] = True
    return ids, mask
