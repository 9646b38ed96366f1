"""The graph limit's pure parts: which bucket a chunk of the load's texts runs in, how texts are
cut into chunks."""

from __future__ import annotations

from solution.benchmarks.gpu_check.limit import bucket_length, chunks_of
from solution.server.compute.buckets import BucketGrid


def test_a_chunk_runs_in_the_smallest_length_that_holds_its_longest_text():
    lengths = BucketGrid().lengths
    assert bucket_length(1, lengths) == 16
    assert bucket_length(96, lengths) == 96
    assert bucket_length(97, lengths) == 112  # the grid steps by 16 tokens from 64 to 160
    assert bucket_length(600, lengths) == 512  # truncated at the models' limit


def test_chunks_are_cut_from_texts_sorted_by_cost():
    cost = [50, 10, 40, 20, 30]
    assert chunks_of(cost, 2) == [[1, 3], [4, 2], [0]]
    assert sorted(i for c in chunks_of(cost, 3) for i in c) == list(range(5))
