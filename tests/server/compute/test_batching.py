"""Forward calls from a batch's lengths, on plain lists. (What a batch takes from the queue, in
arrival order within its budget, is the scheduler's: tests/server/engine/test_scheduler.py.)"""

from solution.server.compute.batching import (
    Group,
    Menu,
    dedupe,
    plan_buckets,
    plan_micro_batches,
    positions,
)
from solution.server.compute.costs import CostTable


def test_dedupe_maps_every_text_to_its_first_occurrence():
    unique, index = dedupe(["a", "b", "a", "", "b", ""])
    assert unique == ["a", "b", ""]
    assert index == [0, 1, 0, 2, 1, 2]


def test_micro_batches_sort_by_length_and_respect_the_padded_budget():
    lengths = [5, 100, 7, 90, 6, 95]
    calls = plan_micro_batches(lengths, max_padded_tokens=300, max_texts=64)
    assert sorted(i for c in calls for i in c) == list(range(6))
    for call in calls:
        assert len(call) * max(lengths[i] for i in call) <= 300
    # long texts are not padded together with short ones
    assert {frozenset(c) for c in calls} == {frozenset({1, 5, 3}), frozenset({2, 4, 0})}
    real, computed = positions(lengths, calls)
    assert real == sum(lengths) and 1 - real / computed < 0.1


def test_micro_batches_respect_the_text_limit_and_a_single_long_text():
    calls = plan_micro_batches([512] * 3 + [3] * 5, max_padded_tokens=512, max_texts=2)
    assert all(len(c) <= 2 for c in calls)
    assert [len(c) for c in calls][:3] == [1, 1, 1]


def test_positions_count_real_tokens_and_each_calls_padded_rows():
    assert positions([4, 4], [[0, 1]]) == (8, 8)  # equal lengths: no padding
    assert positions([2, 4], [[0, 1]]) == (6, 8)  # a quarter of the positions are padding
    assert positions([2, 4, 9], [[1, 0], [2]]) == (15, 17)


# ---- plan_buckets: calls cut to captured buckets, at the least cost -------------------------

SHAPES = [(b, n) for b in (1, 2, 4, 8) for n in (16, 32, 64)]


def flat(replay_s: float, eager_s: float, replay_token_s: float = 0.0, eager_token_s: float = 0.0):
    """A made-up table: every replay ``replay_s`` (+ per token), every eager call ``eager_s``."""
    replay = {s: replay_s + replay_token_s * s[0] * s[1] for s in SHAPES}
    return Menu.of(SHAPES, CostTable(replay, eager_s, eager_token_s))


def check_cover(groups: list[Group], lengths: list[int]) -> None:
    assert sorted(i for g in groups for i in g.indices) == list(range(len(lengths)))
    for g in groups:
        longest = max(lengths[i] for i in g.indices)
        assert [lengths[i] for i in g.indices] == sorted(lengths[i] for i in g.indices)
        if g.bucket is not None:
            assert g.bucket[0] >= len(g.indices) and g.bucket[1] >= longest


def test_where_replay_is_cheaper_every_call_fills_a_bucket():
    lengths = [5, 60, 17, 33, 2, 9, 40, 16, 64, 30, 31]
    groups = plan_buckets(lengths, flat(0.001, 0.025), max_texts=8, max_eager_tokens=4096)
    check_cover(groups, lengths)
    assert all(g.bucket is not None for g in groups)
    # flat replay cost: as few calls as the 8-row buckets allow, longest first
    assert [len(g.indices) for g in groups] == [8, 3]
    assert groups[0].bucket == (8, 64) and groups[1].bucket == (4, 16)  # 2, 5, 9: 4 rows


def test_only_the_group_of_the_shortest_texts_pads_rows():
    lengths = list(range(1, 14))  # 13 texts: 8 + 4 + 1, or a padded 8 + a padded ...
    groups = plan_buckets(lengths, flat(0.001, 0.025, 1e-6), 8, 4096)
    check_cover(groups, lengths)
    padded = [g for g in groups if g.bucket is not None and g.bucket[0] > len(g.indices)]
    assert len(padded) <= 1
    for g in padded:
        assert 0 in g.indices and g.bucket is not None and g.bucket[0] < 2 * len(g.indices)


def test_where_padding_makes_buckets_dearer_calls_run_eager_within_the_token_budget():
    # GPU-bound and launch-free: every padded token costs, a call costs nothing
    menu = flat(0.0, 0.0, replay_token_s=1e-3, eager_token_s=1e-3)
    lengths = [3, 7, 11, 13]
    groups = plan_buckets(lengths, menu, 8, max_eager_tokens=4096)
    check_cover(groups, lengths)
    assert all(g.bucket is None for g in groups)  # eager: no bucket pads less than its own shape
    assert sum(len(g.indices) * max(lengths[i] for i in g.indices) for g in groups) <= 4 * 13


def test_a_tie_between_a_bucket_and_eager_replays_in_fewer_calls():
    same = flat(0.010, 0.010)  # every call costs 10 ms, however it runs
    groups = plan_buckets([10, 20, 30, 40], same, 8, 4096)
    assert [(len(g.indices), g.bucket) for g in groups] == [(4, (4, 64))]


def test_a_text_no_bucket_holds_runs_eager():
    lengths = [10, 12, 300]
    groups = plan_buckets(lengths, flat(0.001, 0.025), 8, max_eager_tokens=512)
    check_cover(groups, lengths)
    assert [(g.indices, g.bucket) for g in groups] == [([2], None), ([0, 1], (2, 16))]


def test_max_texts_caps_the_buckets_a_call_may_use():
    groups = plan_buckets(list(range(1, 9)), flat(0.001, 0.025), max_texts=4, max_eager_tokens=64)
    assert [len(g.indices) for g in groups] == [4, 4]
    assert all(g.bucket is not None and g.bucket[0] == 4 for g in groups)


def test_no_buckets_at_all_is_plain_eager_within_the_budget():
    groups = plan_buckets([5, 6, 7], Menu.of([], CostTable({}, 0.02, 1e-6)), 8, 12)
    assert [(g.indices, g.bucket) for g in groups] == [([2], None), ([0, 1], None)]  # 2x6 <= 12
