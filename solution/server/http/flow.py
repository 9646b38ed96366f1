"""Read-side flow control for one connection: reading pauses while any reason holds (the
pipeline is full, the transport's write buffer is over its high-water mark) and resumes when
the last one clears. Idempotent, so the transport may repeat a pause or a resume."""

from __future__ import annotations

import asyncio

PIPELINE = "pipeline"  # max_pipelined requests in flight
WRITE = "write"  # the client does not read its responses


class FlowControl:
    def __init__(self, transport: asyncio.Transport):
        self._transport = transport
        self._reasons: set[str] = set()

    @property
    def paused(self) -> bool:
        return bool(self._reasons)

    def pause(self, reason: str) -> None:
        if not self._reasons:
            self._transport.pause_reading()
        self._reasons.add(reason)

    def resume(self, reason: str) -> bool:
        """True when this call resumed reading."""
        if reason not in self._reasons:
            return False
        self._reasons.discard(reason)
        if self._reasons:
            return False
        self._transport.resume_reading()
        return True

    def release(self) -> None:
        """Read whatever comes, whatever held it (a lingering close drains the input)."""
        if self._reasons:
            self._reasons.clear()
            self._transport.resume_reading()
