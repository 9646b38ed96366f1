"""The engine's batching limits come from ``Settings`` alone (one source of every default)."""

from __future__ import annotations

import dataclasses

import pytest

from solution.server.config import Settings
from solution.server.engine.limits import AUTO_MICRO_BATCH_TOKENS, BatchingLimits


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_the_defaults_are_the_settings_defaults(device):
    limits = BatchingLimits.from_settings(Settings(), device)
    defaults = Settings()
    assert limits == BatchingLimits(
        max_batch_texts=defaults.max_batch_texts,
        max_batch_tokens=defaults.max_batch_tokens,
        micro_batch_tokens=AUTO_MICRO_BATCH_TOKENS[device],  # 0 in Settings: chosen per device
        max_wait_s=defaults.max_wait_ms / 1000.0,
        queue_texts=defaults.queue_texts,
    )


def test_every_setting_reaches_the_limits():
    settings = Settings().replace(
        max_batch_texts=7,
        max_batch_tokens=999,
        micro_batch_tokens=600,
        max_wait_ms=2.5,
        queue_texts=70,
    )
    assert dataclasses.astuple(BatchingLimits.from_settings(settings, "cpu")) == (
        7,
        999,
        600,
        0.0025,
        70,
    )


def test_limits_have_no_defaults_of_their_own():
    with pytest.raises(TypeError):
        BatchingLimits()  # type: ignore[call-arg]
