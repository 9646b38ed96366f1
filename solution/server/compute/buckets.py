"""Shape buckets for CUDA graphs, as pure functions: which shapes are captured, the
shapes a forward call may be padded to (``costs.py`` decides whether a call replays a bucket or
runs eager; ``batching.plan_buckets`` cuts a batch into bucket-shaped calls).

A CUDA graph replays fixed shapes from fixed buffers, so a call of ``rows x length`` tokens runs
in the graph of a captured ``(batch, length)`` that holds it (``planning.forward_call`` pads it:
real rows first, then dummy rows). Nothing here needs a GPU, so every rule is tested on the CPU.
"""

from __future__ import annotations

from dataclasses import dataclass

Shape = tuple[int, int]  # (batch rows, tokens per row)


@dataclass(frozen=True)
class BucketGrid:
    """The shapes worth a graph. Rows are powers of two: the planner cuts a length-sorted batch
    into groups of exactly a bucket's rows, so only its group of shortest texts pads rows (less
    than 2x). Lengths step by 8-16 tokens where tweets cluster (16-160 tokens: the stand-ins'
    tokenizers give the challenge corpus ~55 tokens per text, the k6 client's texts ~120), so a
    call's length padding stays within 8 tokens or a third of its longest row (16 at least)."""

    batch_sizes: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128)
    lengths: tuple[int, ...] = (
        *(16, 24, 32, 40, 48, 64, 80, 96, 112, 128, 144, 160),
        *(192, 256, 320, 384, 512),
    )
    # Largest captured rows x length: a full batch of the default CLS_MAX_BATCH_TOKENS (128 texts
    # of 128 tokens). A pool's memory is mostly the activations of its largest shape: for a base
    # encoder in fp16 about 0.3 GB at 16,384 tokens, 1.5 GB for five models, which fits a 16 GB
    # T4 beside their 2.4 GB of weights (graphs.CAPTURE_MEMORY_BYTES bounds it as captured).
    max_tokens: int = 16384

    def shapes(self, max_rows: int, max_length: int, max_tokens: int | None = None) -> list[Shape]:
        """Shapes to capture, cheapest first (so a budget that runs out keeps the small,
        launch-bound shapes, where graphs matter most). ``max_rows``/``max_length`` cap the grid:
        the largest call the planner can make (a final bucket at the cap itself is added);
        ``max_tokens`` (a batch's token budget) lowers ``self.max_tokens``."""
        cap = min(self.max_tokens, max_tokens or self.max_tokens)
        rows = sorted({b for b in self.batch_sizes if b < max_rows} | {max_rows})
        lengths = sorted({n for n in self.lengths if n < max_length} | {max_length})
        grid = [(b, n) for b in rows for n in lengths if b * n <= cap]
        return sorted(grid, key=lambda s: (s[0] * s[1], s[1]))
