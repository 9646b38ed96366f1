"""A fake runner that computes in the real runner's steps (``stage``, ``launch``, ``collect``;
``run`` is the three in a row), without models or a device, and records every step.

It stages into two buffers in turn and its "device" reads a buffer when the batch is launched,
the worst the runner's contract allows: a batch launched after two later stagings reads someone
else's inputs. (``streams.CudaStreams`` is kinder: each upload has its own device copy, and the
pinned buffer is rewritten only after its copy finished.) A row's logit for model ``m`` is
``[sum of its ids, m]``, so answers are checkable; a call holding ``POISON`` fails at ``collect``,
as an asynchronous device error surfaces at the batch's one synchronisation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from solution.server.compute.planning import Buckets, FamilyWork
from solution.server.compute.runner import RunOutput

POISON = 666  # a token id the fake models fail on


@dataclass
class FakeFamily:
    name: str
    members: list[int]
    pad_id: int = 0


@dataclass
class FakeStaged:
    buffer: int
    n_rows: int
    tag: int


@dataclass
class FakeLaunched:
    staged: FakeStaged
    logits: np.ndarray
    error: BaseException | None


def tag(work: Sequence[FamilyWork]) -> int:
    """A batch's name in the log: the smallest first id of its rows (tests give each batch's
    texts their own first ids)."""
    return min(int(c.input_ids[i, 0]) for w in work for c in w.calls for i in range(len(c.rows)))


class StepRunner:
    """Two models of one family, computed in steps; ``log`` holds ``(step, tag)`` per step."""

    def __init__(self, device: str = "cuda", error: BaseException | None = None):
        self.device = torch.device(device)  # only its type is read
        self.models = ["m0", "m1"]
        self.max_labels = 2
        self.buckets = Buckets()  # no graphs: the planner's micro-batches
        self.error = error or RuntimeError("simulated model failure")
        self.log: list[tuple[str, int]] = []
        self._buffers: list[tuple[Sequence[FamilyWork], int] | None] = [None, None]
        self._turn = 0

    def stage(self, work: Sequence[FamilyWork], n_rows: int) -> FakeStaged:
        buffer, self._turn = self._turn, self._turn ^ 1
        self._buffers[buffer] = (list(work), n_rows)
        self.log.append(("stage", tag(work)))
        return FakeStaged(buffer, n_rows, tag(work))

    def launch(self, staged: FakeStaged) -> FakeLaunched:
        self.log.append(("launch", staged.tag))
        contents = self._buffers[staged.buffer]
        assert contents is not None
        work, _ = contents  # what the buffer holds now: overwritten if staged twice since
        logits = np.zeros((2, staged.n_rows, 2), dtype=np.float32)
        error = None
        for family in work:
            for call in family.calls:
                ids = np.asarray(call.input_ids)
                if (ids == POISON).any():
                    error = self.error
                for row, seq in zip(call.rows, ids, strict=True):
                    for m in family.members:
                        if row < staged.n_rows:
                            logits[m, row] = [seq.sum(), m]
        return FakeLaunched(staged, logits, error)

    def collect(self, launched: FakeLaunched) -> RunOutput:
        self.log.append(("collect", launched.staged.tag))
        if launched.error is not None:
            raise launched.error
        out = RunOutput(launched.logits, [0.5, 0.25], 0.0, (2, 2))
        out.graph_calls, out.eager_calls, out.gpu_busy_s = 1, 2, 0.125
        return out

    def run(self, work: Sequence[FamilyWork], n_rows: int) -> RunOutput:
        self.log.append(("run", tag(work)))
        return self.collect(self.launch(self.stage(work, n_rows)))

    def steps(self, *names: str) -> list[tuple[str, int]]:
        """The log without ``run`` entries, or only the steps named."""
        return [e for e in self.log if e[0] != "run" and (not names or e[0] in names)]
