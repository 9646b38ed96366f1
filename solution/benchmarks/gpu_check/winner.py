"""Step 6b: the winner-style peer (``peers.winner``) driven in-process at saturation, as the
engine is (the GPU machine has no uvicorn; the served path runs it as a server)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from solution.server.compute.models import LoadedModel

from ..checks import LabelSets, check_result
from ..load import Outcome, closed_loop
from ..peers import winner
from ..stats import format_summary
from .engine import labels_of


class ClassifyTarget:
    """An in-process ``classify(text)`` (the winner-style peer) as a load target."""

    def __init__(
        self, classify: Callable[[str], Awaitable[Any]], texts: list[str], labels: LabelSets
    ):
        self.classify = classify
        self.texts = texts
        self.payloads = len(texts)
        self.labels = labels
        self.name = "winner-style"
        self.broken = False

    async def connect(self) -> ClassifyTarget:
        return self

    async def aclose(self) -> None:
        return None

    async def send(self, index: int) -> Outcome:
        return check_result(await self.classify(self.texts[index]), self.labels)

    def close(self) -> None:
        return None


async def drive_winner(
    args: argparse.Namespace, models: list[LoadedModel], texts: list[str]
) -> dict[str, Any]:
    target = ClassifyTarget(winner.make_classify(models), texts, labels_of(models))
    tally = await closed_loop(target, args.users, args.seconds, warmup_s=args.seconds / 4)
    out = {"saturation": {"users": args.users, **tally.summary()}}
    print(format_summary(f"winner-style {args.users} users", out["saturation"]), file=sys.stderr)
    return out
