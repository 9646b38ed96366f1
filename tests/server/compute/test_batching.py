from dataclasses import dataclass

from solution.server.compute.batching import (
    dedupe,
    padding_ratio,
    plan_micro_batches,
    take_within_budget,
)


@dataclass
class E:
    cost: int


def test_take_within_budget_keeps_arrival_order_and_leaves_the_rest():
    entries = [E(10), E(20), E(30), E(5)]
    taken, rest = take_within_budget(entries, max_texts=10, max_tokens=35)
    assert taken == entries[:2]
    assert rest == entries[2:]  # the one that does not fit waits at the front, order kept


def test_take_within_budget_limits_count():
    entries = [E(1)] * 5
    taken, rest = take_within_budget(entries, max_texts=3, max_tokens=1000)
    assert len(taken) == 3 and len(rest) == 2


def test_oversized_first_entry_is_still_taken_alone():
    taken, rest = take_within_budget([E(600), E(1)], max_texts=10, max_tokens=512)
    assert [e.cost for e in taken] == [600]
    assert [e.cost for e in rest] == [1]


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
    assert padding_ratio(lengths, calls) < 0.1


def test_micro_batches_respect_the_text_limit_and_a_single_long_text():
    calls = plan_micro_batches([512] * 3 + [3] * 5, max_padded_tokens=512, max_texts=2)
    assert all(len(c) <= 2 for c in calls)
    assert [len(c) for c in calls][:3] == [1, 1, 1]


def test_padding_ratio_of_equal_lengths_is_zero():
    assert padding_ratio([4, 4], [[0, 1]]) == 0.0
    assert padding_ratio([2, 4], [[0, 1]]) == 0.25
