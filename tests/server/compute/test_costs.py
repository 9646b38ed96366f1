"""The graph-or-eager rule over made-up cost tables, and the table built from device samples."""

from __future__ import annotations

import pytest

from solution.server.compute.costs import (
    CostTable,
    Sample,
    choose,
    default_table,
    from_samples,
)

SHAPES = [(1, 16), (4, 16), (4, 64), (8, 32), (8, 64)]


def table(replay: float, eager_base: float, per_token: float, replay_per_token: float = 0.0):
    return CostTable(
        {s: replay + replay_per_token * s[0] * s[1] for s in SHAPES}, eager_base, per_token
    )


def test_where_replay_is_always_cheaper_every_fitting_call_gets_a_bucket():
    cheap = table(replay=0.001, eager_base=0.025, per_token=1e-6, replay_per_token=1e-6)
    for rows in range(1, 9):
        for length in range(1, 65):
            bucket, cost = choose(rows, length, SHAPES, cheap)
            assert bucket is not None and bucket[0] >= rows and bucket[1] >= length
            assert cost == cheap.replay(bucket) <= cheap.eager(rows, length)
    assert choose(9, 10, SHAPES, cheap)[0] is None  # more rows than any bucket: eager
    assert choose(1, 65, SHAPES, cheap)[0] is None  # longer than any bucket
    assert choose(1, 5, [], cheap) == (None, cheap.eager(1, 5))


def test_the_cheapest_bucket_is_taken_not_the_smallest():
    odd = CostTable({(4, 64): 0.001, (8, 32): 0.002, (8, 64): 0.003}, 0.025, 0.0)
    assert choose(3, 20, odd.replay_s, odd)[0] == (4, 64)


def test_where_padding_makes_the_bucket_dearer_the_call_runs_eager():
    # GPU-bound: a token costs 1 ms either way; launches cost 1 ms eager, 0.1 ms replayed
    costly = table(replay=0.0001, eager_base=0.001, per_token=0.001, replay_per_token=0.001)
    assert choose(1, 16, SHAPES, costly)[0] == (1, 16)  # an exact fit replays
    assert choose(1, 15, SHAPES, costly)[0] is None  # 1 padded token: 1 ms > 0.9 ms saved
    assert choose(5, 20, SHAPES, costly) == (None, costly.eager(5, 20))  # 8x32: 156 tokens more


def test_a_tie_replays():
    tie = CostTable({(4, 16): 0.010}, eager_base_s=0.010, eager_token_s=0.0)
    assert choose(4, 16, [(4, 16)], tie) == ((4, 16), 0.010)
    dearer = CostTable({(4, 16): 0.0100001}, eager_base_s=0.010, eager_token_s=0.0)
    assert choose(4, 16, [(4, 16)], dearer)[0] is None


def test_without_a_table_the_default_prices_launches_and_padding():
    # small calls: launch-bound, the bucket wins despite padding
    assert choose(3, 10, SHAPES, None)[0] == (4, 16)
    assert choose(5, 33, SHAPES, None)[0] == (8, 64)
    # a large call padded to twice its tokens: the padding costs more than the launches saved
    big = [(128, 128)]
    assert choose(128, 128, big, None)[0] == (128, 128)
    assert choose(64, 128, big, None)[0] is None
    default = default_table(SHAPES)
    assert not default.measured and set(default.replay_s) == set(SHAPES)
    assert all(default.replay(s) < default.eager(*s) for s in SHAPES)


def test_a_table_from_samples_fills_unmeasured_shapes_from_a_line():
    shapes = [(1, 16), (2, 16), (4, 16), (8, 16)]
    samples = [
        Sample((1, 16), 0.025, "eager"),  # written in any order
        Sample((1, 16), 0.0011, "graph"),
        Sample((2, 16), 0.0013, "graph"),
        Sample((8, 16), 0.032, "eager"),
    ]
    costs = from_samples(shapes, samples)
    assert costs.measured
    assert costs.replay((1, 16)) == 0.0011 and costs.replay((2, 16)) == 0.0013
    # the replay line through (16, 1.1 ms) and (32, 1.3 ms): 12.5 us per token
    assert costs.replay((4, 16)) == pytest.approx(0.0017)
    assert costs.replay((8, 16)) == pytest.approx(0.0025)
    # the eager line through its two samples
    assert costs.eager(1, 16) == pytest.approx(0.025)
    assert costs.eager(8, 16) == pytest.approx(0.032)
    assert costs.eager(4, 16) == pytest.approx(0.025 + 0.007 * 48 / 112)
    summary = costs.summary()
    assert summary["measured"] is True and summary["replay_cheaper_than_eager"] == 4
    assert set(summary["replay_ms"]) == {"1x16", "8x16"}


def test_a_table_from_samples_never_falls_below_zero_or_with_tokens():
    samples = [Sample((1, 16), 0.005, "graph"), Sample((8, 16), 0.001, "graph")]
    samples += [Sample((1, 16), 0.030, "eager"), Sample((8, 16), 0.020, "eager")]
    costs = from_samples([(1, 16), (4, 16), (8, 16)], samples)
    assert costs.replay((4, 16)) >= 0 and costs.eager_token_s == 0.0
    assert costs.eager(1000, 512) >= costs.eager(1, 1) > 0
    # a line that would cost less than nothing at 0 tokens starts at 0 instead (eager dearer)
    steep = [Sample((1, 16), 0.001, "graph"), Sample((1, 16), 0.001, "eager")]
    steep.append(Sample((8, 16), 0.040, "eager"))
    assert from_samples([(1, 16), (8, 16)], steep).eager(1, 16) >= 0.001
    one = from_samples([(1, 16)], [Sample((1, 16), 0.002, "graph"), Sample((1, 16), 0.02, "eager")])
    assert one.eager(1, 16) == pytest.approx(0.02)
    with pytest.raises(ValueError, match="needs a replay and an eager"):
        from_samples([(1, 16)], [Sample((1, 16), 0.002, "graph")])
