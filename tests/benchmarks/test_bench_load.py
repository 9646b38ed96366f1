"""The load loops against fake targets: what they count, not how fast they go."""

import asyncio

import pytest

from solution.benchmarks.load import closed_loop, open_loop


class FakeExchange:
    def __init__(self, target):
        self.target = target
        self.broken = False

    async def send(self, index):
        self.target.seen.append(index)
        await asyncio.sleep(self.target.delay_s)
        return self.target.outcome(index)

    def close(self):
        self.target.closed += 1


class FakeTarget:
    name = "fake"

    def __init__(
        self, delay_s=0.0, payloads=5, outcome=lambda i: None, refuse=False, exchange=FakeExchange
    ):
        self.exchange = exchange
        self.delay_s = delay_s
        self.payloads = payloads
        self.outcome = outcome
        self.refuse = refuse
        self.seen = []
        self.connects = 0
        self.closed = 0

    async def connect(self):
        self.connects += 1
        if self.refuse:
            raise ConnectionRefusedError("nothing listens")
        return self.exchange(self)

    async def aclose(self):
        return None


async def test_open_loop_counts_arrivals_it_could_not_send():
    target = FakeTarget(delay_s=0.3)
    arrivals = [0.01 * i for i in range(10)]  # 10 requests within 0.1 s, 2 users, 0.3 s each
    tally = await open_loop(target, arrivals, max_vus=2)
    assert tally.sent == 2 and tally.unsent == 8
    assert len(tally.latencies) == 2 and tally.failed == 0
    assert tally.max_in_flight == 2 and target.connects == 2


async def test_open_loop_reuses_idle_users():
    target = FakeTarget(delay_s=0.0)
    tally = await open_loop(target, [0.02 * i for i in range(10)], max_vus=1)
    assert tally.sent == 10 and tally.unsent == 0 and target.connects == 1
    assert target.seen == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4]  # payloads cycled in order


async def test_failed_checks_and_refused_connections_are_errors_by_kind():
    target = FakeTarget(outcome=lambda i: ("check_label", "bad") if i == 1 else None)
    # a user per arrival: on a loaded machine one user may still be busy when the next is due
    tally = await open_loop(target, [0.0, 0.001, 0.002], max_vus=3)
    assert tally.errors == {"check_label": 1} and len(tally.latencies) == 2 and tally.unsent == 0

    tally = await open_loop(FakeTarget(refuse=True), [0.0, 0.001], max_vus=5)
    assert tally.errors == {"connect": 2} and not tally.latencies


async def test_closed_loop_keeps_its_users_busy_until_the_deadline():
    target = FakeTarget(delay_s=0.01)
    tally = await closed_loop(target, vus=4, duration_s=0.3)
    assert tally.max_in_flight == 4 and target.connects == 4
    assert 40 <= len(tally.latencies) <= 4 * 31  # ~30 per user; sleeps may run long, never short
    assert tally.failed == 0 and tally.unsent == 0
    assert target.closed == 4  # every user's connection is closed at the end


class IdleClosingExchange(FakeExchange):
    """Answers, then the server closes the connection while it is idle (keep-alive timeout)."""

    async def send(self, index):
        outcome = await super().send(index)
        asyncio.get_running_loop().call_soon(setattr, self, "broken", True)
        return outcome


async def test_a_connection_closed_while_idle_is_reopened_not_counted_as_an_error():
    target = FakeTarget(exchange=IdleClosingExchange)
    tally = await open_loop(target, [0.0, 0.05, 0.1], max_vus=1)
    assert tally.failed == 0 and len(tally.latencies) == 3
    assert target.connects == 3  # reconnected before each later request


async def test_closed_loop_throughput_counts_answers_that_outlast_the_deadline():
    """One round of slow answers (a CPU batch) longer than the run is still a rate, not zero."""
    target = FakeTarget(delay_s=0.4)
    tally = await closed_loop(target, vus=4, duration_s=0.1)
    assert len(tally.latencies) == 4 and tally.duration_s >= 0.4
    assert tally.throughput() == pytest.approx(4 / tally.duration_s, rel=0.01)
