"""The batching settings in the engine's units, made from ``Settings`` alone (its fields and
defaults are the one source of every value)."""

from __future__ import annotations

from dataclasses import dataclass

from solution.server.config import Settings

# Padded tokens per forward call when CLS_MICRO_BATCH_TOKENS is 0. On a CPU a forward's cost per
# text barely changes from 4 to 16 texts (benchmarks: 2.98 vs 3.17 texts/s for base models), so
# small length-sorted calls win by wasting less on padding; a GPU wants fewer, larger calls.
AUTO_MICRO_BATCH_TOKENS = {"cpu": 1024, "cuda": 4096}


@dataclass(frozen=True)
class BatchingLimits:
    """The batching settings in the engine's units; made from ``Settings`` only (its fields and
    defaults are the one source), with the device's automatic micro-batch size resolved."""

    max_batch_texts: int
    max_batch_tokens: int  # real tokens of one batch (the longest family per text)
    micro_batch_tokens: int  # padded tokens per forward call
    max_wait_s: float  # how long a free compute thread may wait for a batch to grow
    queue_texts: int  # texts waiting (not yet in a batch); more are refused at admission

    @classmethod
    def from_settings(cls, settings: Settings, device_type: str) -> BatchingLimits:
        return cls(
            max_batch_texts=settings.max_batch_texts,
            max_batch_tokens=settings.max_batch_tokens,
            micro_batch_tokens=settings.micro_batch_tokens
            or AUTO_MICRO_BATCH_TOKENS.get(device_type, AUTO_MICRO_BATCH_TOKENS["cuda"]),
            max_wait_s=settings.max_wait_ms / 1000.0,
            queue_texts=settings.queue_texts,
        )
