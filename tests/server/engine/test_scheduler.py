"""The scheduler's rules, driven by hand: no threads, no models, no clock (``now`` is passed in)."""

from __future__ import annotations

import dataclasses
import gc
import weakref

import pytest

from solution.server.config import Settings
from solution.server.engine.entries import (
    LONG_TEXT_CHARS,
    TOKENIZE_CHUNK_TEXTS,
    Batch,
    Client,
    Entry,
    Lane,
    State,
    Submission,
)
from solution.server.engine.limits import BatchingLimits
from solution.server.engine.scheduler import Scheduler
from solution.server.errors import (
    DeadlineExceeded,
    ModelFailure,
    NotReady,
    Overloaded,
    ShuttingDown,
)


def limits(**changes: object) -> BatchingLimits:
    """The service's defaults (``Settings``, the one source), with ``changes``."""
    return dataclasses.replace(BatchingLimits.from_settings(Settings(), "cpu"), **changes)


LIMITS = limits(max_batch_texts=4, max_batch_tokens=100, queue_texts=10)


def make(limits: BatchingLimits = LIMITS) -> Scheduler:
    s = Scheduler(limits, n_families=2)
    s.open()  # warmed up: clients are admitted
    return s


def admit(
    s: Scheduler, *texts: str, deadline: float | None = None, client: Client | None = None
) -> Submission:
    submission = Submission(len(texts), deadline, client=client or Client())
    assert s.admit(submission, texts) == []  # nothing shed
    return submission


def tokenize_all(s: Scheduler, lane: Lane = Lane.SHORT, tokens: int = 5) -> list[Entry]:
    """What a tokenizer thread does: take a chunk, give every text ``tokens`` ids per family."""
    chunk = s.take_for_tokenizing(lane)
    assert s.tokenized(chunk, [[[1] * tokens, [2] * tokens] for _ in chunk]) == []
    return chunk


def texts(batch) -> list[str]:
    return [e.text for e in batch.entries]


def test_admission_is_all_or_nothing_within_the_budget():
    s = make()
    admit(s, *"abcdefgh")
    with pytest.raises(Overloaded):
        admit(s, "x", "y", "z")  # 8 + 3 > 10: none of the three is queued
    assert s.waiting_texts == 8
    admit(s, "x", "y")
    assert s.waiting_texts == 10


def test_admission_waits_for_warm_up_and_ends_with_the_drain_each_refusal_counted():
    s = Scheduler(LIMITS, n_families=2)
    with pytest.raises(NotReady):
        admit(s, "a client before warm-up")
    s.admit(Submission(1, origin="warmup"), ["the warm-up"])
    s.open()
    admit(s, "a client")
    s.close()
    with pytest.raises(ShuttingDown):
        admit(s, "a client during the drain")
    s.open()  # a warm-up that ends after the drain began does not reopen admission
    with pytest.raises(ShuttingDown):
        admit(s, "still draining")
    assert s.waiting_texts == 2 and not s.ready
    assert s.refused == {"not_ready": 1, "shutting_down": 2}


def test_a_full_queue_refusal_is_counted_and_a_stopped_scheduler_refuses_everything():
    s = make()
    admit(s, *"abcdefghij")
    with pytest.raises(Overloaded):
        admit(s, "k")
    s.stop()
    with pytest.raises(ShuttingDown):
        admit(s, "after stop")
    assert s.refused == {"overloaded": 1, "shutting_down": 1}


def test_a_batch_is_cut_from_tokenized_texts_in_arrival_order():
    s = make()
    admit(s, "a", "b")
    admit(s, "c")
    tokenize_all(s)
    cut = s.cut(now=0.0)
    assert cut.batch is not None and texts(cut.batch) == ["a", "b", "c"]
    assert all(e.state is State.BATCHED for e in cut.batch.entries)
    assert s.waiting_texts == 0 and s.computing_texts == 3
    s.finish(cut.batch)
    assert s.idle and all(e.state is State.DONE for e in cut.batch.entries)


def test_what_does_not_fit_stays_first_in_line_for_the_next_batch():
    s = make()
    admit(s, *"abcdef")  # six texts, four per batch
    tokenize_all(s)
    first = s.cut(now=0.0).batch
    assert first is not None and texts(first) == ["a", "b", "c", "d"]
    admit(s, "g")
    tokenize_all(s)
    s.finish(first)
    second = s.cut(now=0.0).batch
    assert second is not None and texts(second) == ["e", "f", "g"]


def test_the_token_budget_stops_the_batch_but_a_single_large_text_still_runs():
    s = make()
    admit(s, "big", "small")
    chunk = s.take_for_tokenizing(Lane.SHORT)
    s.tokenized(chunk, [[[0] * 150, [0] * 150], [[0] * 5, [0] * 5]])
    first = s.cut(now=0.0).batch
    assert first is not None and texts(first) == ["big"]  # over the budget alone: taken alone
    s.finish(first)
    second = s.cut(now=0.0).batch
    assert second is not None and texts(second) == ["small"]


def test_the_cost_of_a_text_is_its_longest_tokenization():
    s = make()
    admit(s, "a", "b", "c")
    chunk = s.take_for_tokenizing(Lane.SHORT)
    s.tokenized(chunk, [[[0] * 10, [0] * 45]] * 3)  # 45 each: two fit in 100, not three
    batch = s.cut(now=0.0).batch
    assert batch is not None and texts(batch) == ["a", "b"]


def test_duplicates_in_a_batch_become_one_row():
    s = make()
    admit(s, "same", "other", "same")
    tokenize_all(s)
    batch = s.cut(now=0.0).batch
    assert batch is not None
    assert batch.texts == ["same", "other"] and batch.row_of_entry == [0, 1, 0]
    assert len(batch.ids) == 2 and len(batch.ids[0]) == 2  # [family][row]


def test_the_cut_waits_for_short_texts_that_arrived_before_it_began():
    s = make()
    admit(s, "a")
    tokenize_all(s)
    admit(s, "b")  # queued, not yet tokenized: a few milliseconds away
    assert s.cut(now=0.0).batch is None
    tokenize_all(s)
    batch = s.cut(now=0.0).batch
    assert batch is not None and texts(batch) == ["a", "b"]


def test_texts_arriving_after_the_cut_began_never_hold_it():
    s = make()
    admit(s, "a")
    s.take_for_tokenizing(Lane.SHORT)  # "a" is being tokenized
    assert s.cut(now=0.0).batch is None  # waits for "a"
    admit(s, "late")  # arrives while the cut waits
    chunk = [e for e in s._waiting if e.text == "a"]
    s.tokenized(chunk, [[[1], [1]]])
    batch = s.cut(now=0.0).batch
    assert batch is not None and texts(batch) == ["a"]  # not held up by "late"


def test_no_cut_ever_waits_for_a_long_text():
    s = make()
    long_text = "x" * (LONG_TEXT_CHARS + 1)
    admit(s, long_text)
    admit(s, "short")
    assert s.take_for_tokenizing(Lane.LONG)[0].text == long_text  # its own lane, still working
    tokenize_all(s, Lane.SHORT)
    batch = s.cut(now=0.0).batch
    assert batch is not None and texts(batch) == ["short"]


def test_the_long_lane_takes_one_text_at_a_time_and_the_short_lane_a_chunk():
    s = make(limits(queue_texts=1000))
    long_text = "x" * (LONG_TEXT_CHARS + 1)
    admit(s, long_text, long_text, *["t"] * (TOKENIZE_CHUNK_TEXTS + 10))
    assert len(s.take_for_tokenizing(Lane.LONG)) == 1
    assert len(s.take_for_tokenizing(Lane.SHORT)) == TOKENIZE_CHUNK_TEXTS
    assert len(s.take_for_tokenizing(Lane.SHORT)) == 10
    assert s.take_for_tokenizing(Lane.SHORT) == []


def test_max_wait_lets_a_batch_grow_then_cuts():
    s = make(limits(max_batch_texts=4, max_wait_s=0.01, queue_texts=10))
    admit(s, "a")
    tokenize_all(s)
    cut = s.cut(now=1.0)
    assert cut.batch is None and cut.wait_s == pytest.approx(0.01)
    admit(s, "b")
    tokenize_all(s)
    assert s.cut(now=1.005).batch is None
    batch = s.cut(now=1.011).batch
    assert batch is not None and texts(batch) == ["a", "b"]


def test_max_wait_ends_early_when_the_batch_is_full():
    s = make(limits(max_batch_texts=2, max_wait_s=10.0, queue_texts=10))
    admit(s, "a", "b")
    tokenize_all(s)
    batch = s.cut(now=0.0).batch
    assert batch is not None and texts(batch) == ["a", "b"]


def test_a_cancelled_request_leaves_the_queue_and_the_budget_at_once():
    s = make()
    gone = admit(s, *"abcdefgh")
    tokenize_all(s)
    assert s.cancel(gone) == 8
    assert s.waiting_texts == 0 and s.dropped["client_gone"] == 8
    admit(s, *"0123456789")  # the whole budget is free again


def test_a_request_cancelled_while_tokenizing_is_dropped_when_its_ids_arrive():
    s = make()
    gone = admit(s, "a")
    chunk = s.take_for_tokenizing(Lane.SHORT)
    s.cancel(gone)
    assert s.waiting_texts == 1  # its tokenizer still holds it
    assert s.tokenized(chunk, [[[1], [1]]]) == []
    assert s.idle and s.dropped["client_gone"] == 1


def test_an_expired_deadline_is_dropped_while_filling_and_answered():
    s = make()
    late = admit(s, "late", deadline=5.0).entries[0]
    admit(s, "fine")
    tokenize_all(s)
    cut = s.cut(now=6.0)
    assert cut.batch is not None and texts(cut.batch) == ["fine"]
    assert [(e.text, type(err)) for e, err in cut.dropped] == [("late", DeadlineExceeded)]
    assert late.state is State.DONE and s.dropped["deadline"] == 1


def test_expire_answers_only_a_request_with_texts_left_waiting():
    s = make()
    computing = admit(s, "a")
    tokenize_all(s)
    batch = s.cut(now=0.0).batch
    assert batch is not None
    assert s.expire(computing) is False  # all of it is computing: its answer is moments away
    waiting = admit(s, "b")
    assert s.expire(waiting) is True
    assert s.waiting_texts == 0


def test_a_failed_text_drops_the_rest_of_its_request():
    s = make(limits(max_batch_texts=1, queue_texts=10))
    never = admit(s, "bad", "never computed").entries[1]
    tokenize_all(s)
    batch = s.cut(now=0.0).batch
    assert batch is not None and texts(batch) == ["bad"]
    s.finish(batch, failed=batch.entries)
    assert s.idle and s.dropped["request_failed"] == 1
    assert never.state is State.DONE


def test_a_tokenizer_error_answers_the_text_and_drops_its_request():
    s = make()
    admit(s, "bad", "sibling")
    chunk = s.take_for_tokenizing(Lane.SHORT)
    failure = ModelFailure("tokenizer failed")
    outcomes = s.tokenized(chunk[:1], [failure])
    assert outcomes == [(chunk[0], failure)]
    s.tokenized(chunk[1:], [[[1], [1]]])  # the sibling's ids arrive after: dropped, not queued
    assert s.idle


def test_stop_answers_everything_waiting_and_lets_the_batch_in_hand_finish():
    """Nothing is taken out and pushed back, so there is no moment at which a stop can miss the
    entries of a batch cut (the old engine lost those between the cut and its push-back)."""
    s = make()
    r1 = admit(s, *"abcdef")
    r2 = admit(s, "g")
    tokenize_all(s)
    batch = s.cut(now=0.0).batch  # takes four, two of r1 stay in line
    assert batch is not None
    outcomes = s.stop()
    assert sorted(e.text for e, _ in outcomes) == ["e", "f", "g"]
    assert all(isinstance(err, ShuttingDown) for _, err in outcomes)
    errors = {id(e.submission): err for e, err in outcomes}
    assert errors[id(r1)] is not errors[id(r2)]  # one exception object per request
    assert s.computing_texts == 4
    s.finish(batch)
    assert s.idle
    with pytest.raises(ShuttingDown):
        admit(s, "after")
    assert s.cut(now=0.0).batch is None


def test_abort_answers_computing_texts_too():
    s = make()
    admit(s, "a", "b")
    admit(s, "c")
    tokenize_all(s)
    batch = s.cut(now=0.0).batch
    admit(s, "d")
    outcomes = s.abort(ModelFailure, "a worker died")
    assert sorted(e.text for e, _ in outcomes) == ["a", "b", "c", "d"]
    assert all(isinstance(err, ModelFailure) for _, err in outcomes)
    assert s.idle
    assert batch is not None
    s.finish(batch)  # the compute thread returning late changes nothing
    assert s.idle


def test_a_deadline_passing_while_a_text_is_tokenized_still_answers_the_request():
    """Found by the HTTP stress run: such a request was never answered."""
    s = make()
    late = admit(s, "late", deadline=1.0)
    chunk = s.take_for_tokenizing(Lane.SHORT)
    assert s.expire(late) is True  # the owner answers DeadlineExceeded now
    assert s.tokenized(chunk, [[[1], [1]]]) == []  # and the ids that arrive later are dropped
    assert s.idle


# ---- fair share ------------------------------------------------------------------------------


def test_each_batch_takes_from_the_clients_in_turn():
    s = make(limits(max_batch_texts=4, queue_texts=100))
    heavy, light = Client("heavy"), Client("light")
    admit(s, *[f"h{i}" for i in range(20)], client=heavy)
    admit(s, "l0", client=light)
    tokenize_all(s)
    batch = s.cut(now=0.0).batch
    assert batch is not None and texts(batch) == ["h0", "l0", "h1", "h2"]
    s.finish(batch)
    admit(s, "l1", client=light)  # the light client's next text is again in the next batch
    tokenize_all(s)
    batch = s.cut(now=0.0).batch
    assert batch is not None and texts(batch) == ["h3", "l1", "h4", "h5"]


def test_submissions_of_one_client_stay_in_arrival_order_whatever_their_connection():
    s = make(limits(max_batch_texts=4, queue_texts=100))
    one, same_id = Client("team-a"), Client("team-a")  # two connections, one client id
    admit(s, "a0", "a1", client=one)
    admit(s, "a2", client=same_id)
    admit(s, "b0", client=Client("team-b"))
    tokenize_all(s)
    batch = s.cut(now=0.0).batch
    assert batch is not None and texts(batch) == ["a0", "b0", "a1", "a2"]


def test_a_client_whose_next_text_does_not_fit_gives_way_to_the_others():
    s = make(limits(max_batch_texts=4, max_batch_tokens=100, queue_texts=100))
    admit(s, "big1", "big2", client=Client("big"))
    admit(s, "small1", "small2", client=Client("small"))
    chunk = s.take_for_tokenizing(Lane.SHORT)
    costs = {"big1": 60, "big2": 60, "small1": 10, "small2": 10}
    s.tokenized(chunk, [[[0] * costs[e.text], []] for e in chunk])
    batch = s.cut(now=0.0).batch
    assert batch is not None and texts(batch) == ["big1", "small1", "small2"]
    s.finish(batch)
    batch = s.cut(now=0.0).batch
    assert batch is not None and texts(batch) == ["big2"]  # first in its line, not starved


def test_a_tokenizer_chunk_takes_from_the_clients_in_turn():
    s = make(limits(queue_texts=1000))
    admit(s, *["h"] * (TOKENIZE_CHUNK_TEXTS + 10), client=Client("heavy"))
    admit(s, "light", client=Client("light"))
    first = s.take_for_tokenizing(Lane.SHORT)
    assert len(first) == TOKENIZE_CHUNK_TEXTS and "light" in [e.text for e in first]


def test_a_full_queue_sheds_the_heavy_clients_newest_request_for_a_light_one():
    s = make()  # room for 10 texts
    heavy, light = Client("heavy"), Client("light")
    submissions = [admit(s, f"h{i}", client=heavy) for i in range(10)]
    newest = submissions[-1].entries[0]
    shed = s.admit(Submission(1, client=light), ["l0"])
    assert [(e.submission, type(err)) for e, err in shed] == [(submissions[-1], Overloaded)]
    assert newest.state is State.DONE and s.dropped["shed"] == 1
    assert s.waiting_texts == 10
    with pytest.raises(Overloaded):  # the heavy client, not the light one, is refused now
        s.admit(Submission(1, client=heavy), ["h10"])
    assert s.waiting_texts == 10 and s.dropped["shed"] == 1


def test_a_client_holding_no_more_than_the_newcomer_would_is_not_shed():
    s = make()
    a, b = Client("a"), Client("b")
    admit(s, *"abcde", client=a)
    admit(s, *"fghij", client=b)
    with pytest.raises(Overloaded):  # b would hold 6 > a's 5: b is the heavier one
        s.admit(Submission(1, client=b), ["k"])
    with pytest.raises(Overloaded):  # a newcomer as large as the others gets no room either
        s.admit(Submission(5, client=Client("c")), list("12345"))
    assert s.waiting_texts == 10 and not s.dropped


def test_one_request_is_not_shed_when_that_would_leave_its_client_the_lighter_one():
    s = make()
    admit(s, *"abcdefghij", client=Client("heavy"))
    with pytest.raises(Overloaded):  # shedding all ten for one text would turn the tables
        s.admit(Submission(1, client=Client("light")), ["l"])
    assert s.waiting_texts == 10 and not s.dropped


def test_shedding_is_all_or_nothing():
    s = make()
    heavy = Client("heavy")
    for text in "abcdef":
        admit(s, text, client=heavy)
    admit(s, *"ghij", client=Client("other"))
    # 4 texts: two of heavy's could go (6 -> 4), then nobody holds more than the newcomer would
    with pytest.raises(Overloaded):
        s.admit(Submission(4, client=Client("new")), list("1234"))
    assert s.waiting_texts == 10 and not s.dropped
    shed = s.admit(Submission(2, client=Client("new")), ["1", "2"])  # two fit: 6 -> 4 > 2
    assert [e.text for e, _ in shed] == ["f", "e"] and s.dropped["shed"] == 2


# ---- closed connections: served last, shed first ----------------------------------------------


def test_a_closed_connections_texts_are_batched_only_when_no_live_text_is_ready():
    s = make(limits(max_batch_texts=32, queue_texts=100))
    gone = Client("gone")
    admit(s, *[f"g{i}" for i in range(10)], client=gone)
    s.client_closed(gone)  # the FIN arrived after admission
    admit(s, "live", client=Client("live"))
    tokenize_all(s)
    batch = s.cut(now=0.0).batch
    assert batch is not None and texts(batch) == ["live"]
    s.finish(batch)
    batch = s.cut(now=0.0).batch  # nothing live waits: a small batch of the closed ones
    assert batch is not None and texts(batch) == ["g0", "g1"]  # 32 // CLOSED_BATCH_SHARE


def test_a_tokenizer_takes_live_texts_before_a_closed_connections():
    s = make(limits(queue_texts=1000))
    gone = Client("gone", closed=True)
    admit(s, *["g"] * TOKENIZE_CHUNK_TEXTS, client=gone)
    admit(s, "live", client=Client("live"))
    first = s.take_for_tokenizing(Lane.SHORT)
    assert first[0].text == "live" and len(first) == TOKENIZE_CHUNK_TEXTS


def test_the_cut_never_waits_for_a_closed_connections_texts():
    s = make()
    admit(s, "live", client=Client("live"))
    tokenize_all(s)
    admit(s, "gone", client=Client("gone", closed=True))  # queued, not tokenized
    batch = s.cut(now=0.0).batch
    assert batch is not None and texts(batch) == ["live"]


def test_a_full_queue_sheds_closed_connections_first_even_for_a_heavy_client():
    s = make()
    heavy, gone = Client("heavy"), Client("gone", closed=True)
    admit(s, *"abcdef", client=heavy)
    old, new = admit(s, "g1", "g2", client=gone), admit(s, "g3", "g4", client=gone)
    shed = s.admit(Submission(2, client=heavy), ["x", "y"])
    assert [e.submission for e, _ in shed] == [new]  # the newest closed request was enough
    assert s.dropped["client_gone"] == 2 and old.entries[0].state is State.QUEUED
    assert s.waiting_by_class() == {"live": 8, "closed": 2}


def test_a_connection_that_closes_after_admission_is_shed_first_and_counted_as_closed():
    s = make()  # room for 10
    heavy, gone, other = Client("heavy"), Client("shared"), Client("shared")
    admit(s, *"abcdef", client=heavy)
    mine = admit(s, "g1", "g2", client=gone)
    admit(s, "o1", "o2", client=other)  # the same client id on another connection: still live
    s.client_closed(gone)
    assert s.waiting_by_class() == {"live": 8, "closed": 2}
    shed = s.admit(Submission(2, client=Client("light")), ["x", "y"])
    assert [e.submission for e, _ in shed] == [mine]  # not the heavy client's, not the other's
    assert s.dropped["client_gone"] == 2
    assert s.waiting_by_class() == {"live": 10, "closed": 0}


def test_a_closed_connection_never_sheds_anyone():
    s = make()
    admit(s, *"abcdefghij", client=Client("heavy"))
    with pytest.raises(Overloaded):
        s.admit(Submission(1, client=Client("gone", closed=True)), ["g"])


# ---- two batches in hand: on CUDA the next batch is cut and staged while one computes ---------


def cut_batch(s: Scheduler, now: float = 0.0):
    batch = s.cut(now).batch
    assert batch is not None
    return batch


def test_a_batch_cut_while_one_computes_and_each_finishes_on_its_own():
    s = make()
    admit(s, "a", "b")
    tokenize_all(s)
    first = cut_batch(s)
    admit(s, "c")
    tokenize_all(s)
    second = cut_batch(s)  # the first is still in hand
    assert texts(second) == ["c"] and s.computing_texts == 3 and s.waiting_texts == 0
    s.finish(first)
    assert s.computing_texts == 1 and not s.idle  # a drain still waits for the staged one
    assert [e.state for e in second.entries] == [State.BATCHED]
    s.finish(second)
    assert s.idle


def two_batches_in_hand() -> tuple[Scheduler, Batch, Batch]:
    """A scheduler holding batch [a] and batch [b] (CUDA's launched and staged ones)."""
    s = make()
    admit(s, "a")
    tokenize_all(s)
    first = cut_batch(s)
    admit(s, "b")
    tokenize_all(s)
    second = cut_batch(s)
    return s, first, second


def test_stop_lets_both_batches_in_hand_finish():
    s, first, second = two_batches_in_hand()
    admit(s, "c")
    outcomes = s.stop()
    assert [e.text for e, _ in outcomes] == ["c"] and s.computing_texts == 2
    assert s.cut(now=0.0).batch is None  # nothing more is cut
    s.finish(first)
    s.finish(second)
    assert s.idle


def test_abort_answers_both_batches_in_hand_and_their_late_finish_changes_nothing():
    s, first, second = two_batches_in_hand()
    outcomes = s.abort(ModelFailure, "a worker died")
    assert sorted(e.text for e, _ in outcomes) == ["a", "b"] and s.idle
    s.finish(first)
    s.finish(second)
    assert s.idle and s.dropped["aborted"] == 2


def test_a_request_whose_texts_are_in_the_staged_batch_has_nothing_left_to_expire():
    s = make()
    admit(s, "a")
    tokenize_all(s)
    cut_batch(s)
    staged = admit(s, "b", deadline=5.0)
    tokenize_all(s)
    cut_batch(s, now=1.0)
    assert s.expire(staged) is False  # cut: its answer comes with its batch
    assert s.cut(now=6.0).dropped == []


def test_a_failed_text_leaves_its_requests_texts_in_the_other_batch_to_finish():
    s = make(limits(max_batch_texts=1, max_batch_tokens=100, queue_texts=10))
    request = admit(s, "a", "b", "c")
    tokenize_all(s)
    first, second = cut_batch(s), cut_batch(s)
    s.finish(first, failed=first.entries)
    assert request.gone and s.waiting_texts == 0 and s.dropped["request_failed"] == 1
    assert s.computing_texts == 1  # "b" is computed with its batch; the owner discards it
    s.finish(second)
    assert s.idle


def test_a_look_ahead_that_cuts_nothing_starts_the_wait_the_next_cut_counts_from():
    """With one batch launched the compute thread looks once and takes a batch only if one is cut
    at once; the wait for the batch to grow began at that look, so the GPU does not wait again
    after the launched batch's collect."""
    s = make(limits(max_batch_texts=4, max_wait_s=0.01, queue_texts=10))
    admit(s, "a")
    tokenize_all(s)
    assert s.cut(now=0.5).batch is None  # growing
    first = cut_batch(s, now=0.52)
    assert texts(first) == ["a"]
    admit(s, "b")
    tokenize_all(s)
    look = s.cut(now=1.0)  # the look ahead, right after the launch
    assert look.batch is None and look.wait_s == pytest.approx(0.01)
    s.finish(first)  # 20 ms later, the launched batch is collected
    second = cut_batch(s, now=1.02)
    assert texts(second) == ["b"]


@pytest.mark.parametrize(
    "way_out", ["computed", "failed", "shed", "cancelled", "expired", "stopped"]
)
def test_a_submission_that_is_done_is_freed_by_refcounting_alone(way_out: str):
    """Its entries point at it and it lists them: once the last is done the scheduler empties the
    list. Kept, every request that waited into the collector's oldest generation stayed, with its
    texts, ids and answers, until a full collection (beside a flood: +200 MiB of RSS)."""
    s = make()
    heavy = Client("heavy")
    others = [admit(s, *"abcdefgh", client=heavy)]  # with the two below: the queue is full
    gc.collect()
    gc.disable()
    try:
        submission = admit(s, "y", "z", client=heavy, deadline=5.0)
        freed = weakref.ref(submission)
        if way_out in ("computed", "failed"):
            s.cancel(others.pop())  # the submission's texts are the ones batched
            tokenize_all(s)
            batch = s.cut(now=0.0).batch
            assert batch is not None and texts(batch) == ["y", "z"]
            s.finish(batch, failed=batch.entries[:1] if way_out == "failed" else ())
            del batch
        elif way_out == "shed":
            shed = s.admit(Submission(1, client=Client("light")), ["l"])
            assert [e.submission for e, _ in shed] == [submission]
            del shed
        elif way_out == "cancelled":
            s.cancel(submission)
        elif way_out == "expired":
            tokenize_all(s)
            assert [e.submission for e, _ in s.cut(now=6.0).dropped] == [submission] * 2
        else:
            assert len(s.stop()) == 10
        del submission
        assert freed() is None
    finally:
        gc.enable()
