"""The engine itself as a load target: ``Engine.submit`` of one text per request, no front-end,
each result checked like an HTTP answer. Used by the wait sweep and the GPU check."""

from __future__ import annotations

from solution.server.engine.engine import Engine
from solution.server.errors import ServiceError

from .checks import LabelSets, check_result
from .load import Outcome


class EngineTarget:
    def __init__(self, engine: Engine, texts: list[str], labels: LabelSets, name: str):
        self.engine = engine
        self.texts = texts
        self.payloads = len(texts)
        self.labels = labels
        self.name = name

    async def connect(self) -> EngineExchange:
        return EngineExchange(self)

    async def aclose(self) -> None:
        return None


class EngineExchange:
    def __init__(self, target: EngineTarget):
        self.target = target
        self.broken = False

    async def send(self, index: int) -> Outcome:
        try:
            [result] = await self.target.engine.submit([self.target.texts[index]], origin="bench")
        except ServiceError as exc:
            return type(exc).__name__, str(exc)
        # default options: one prediction per model, as /process answers it
        plain = {k: {"score": p.score, "label": p.label} for k, p in result.items()}  # type: ignore[union-attr]
        return check_result(plain, self.target.labels)

    def close(self) -> None:
        return None
