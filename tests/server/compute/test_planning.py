"""Call planning as a pure function: micro-batches per family, padding, rows."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from solution.server.compute.planning import forward_call, plan


@dataclass
class Fam:
    name: str
    members: list[int]
    pad_id: int


IDS = [
    # family 0: lengths 2, 5, 3, 9, 1
    [[0, 2], [0, 5, 6, 7, 2], [0, 9, 2], [0, 1, 2, 3, 4, 5, 6, 7, 2], [0]],
    # family 1: the same texts, another tokenizer
    [[0, 2], [0, 8, 2], [0, 9, 9, 2], [0, 3, 3, 3, 3, 3, 2], [0, 2]],
]
FAMILIES = [Fam("xlmr", [0, 1, 2, 3], pad_id=1), Fam("roberta", [4], pad_id=7)]


def test_rows_are_cut_by_length_within_the_budget_and_padded_per_call():
    p = plan(IDS, FAMILIES, [1, 3, 4], micro_batch_tokens=10, max_texts=8)
    assert [w.members for w in p.work] == [[0, 1, 2, 3], [4]]
    for work, family, ids in zip(p.work, FAMILIES, IDS, strict=True):
        seen = sorted(r for call in work.calls for r in call.rows)
        assert seen == [0, 1, 2]  # the runner's rows: positions in [1, 3, 4]
        for call in work.calls:
            rows, longest = call.input_ids.shape
            assert rows * longest <= 10 or rows == 1
            for j, r in enumerate(call.rows):
                seq = ids[[1, 3, 4][r]]
                assert call.input_ids[j, : len(seq)].tolist() == seq
                assert (call.input_ids[j, len(seq) :] == family.pad_id).all()
                padding = [0] * (longest - len(seq))
                assert call.attention_mask[j].tolist() == [1] * len(seq) + padding
    assert p.calls == sum(len(w.calls) for w in p.work)
    for work, family, ids in zip(p.work, FAMILIES, IDS, strict=True):
        computed = sum(c.input_ids.numel() for c in work.calls)
        assert p.positions[family.name] == (sum(len(ids[r]) for r in (1, 3, 4)), computed)
    first = p.work[0].calls[0]
    assert first.rows == [1]  # longest first: the worst-case memory shows at once


def test_max_texts_caps_a_call():
    p = plan(IDS, FAMILIES[:1], range(5), micro_batch_tokens=10_000, max_texts=2)
    assert [len(c.rows) for c in p.work[0].calls] == [2, 2, 1]


def test_forward_call_pads_to_the_longest_of_its_group():
    call = forward_call([[5, 6, 7], [8]], [1, 0], pad_id=3)
    assert call.rows == [1, 0]
    assert call.input_ids.tolist() == [[8, 3, 3], [5, 6, 7]]
    assert call.attention_mask.tolist() == [[1, 0, 0], [1, 1, 1]]
    assert call.input_ids.dtype == torch.int64
