"""Forward calls from a batch's lengths, on plain lists. (What a batch takes from the queue, in
arrival order within its budget, is the scheduler's: tests/server/engine/test_scheduler.py.)"""

from solution.server.compute.batching import dedupe, plan_micro_batches, positions


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
