"""``python -m solution.benchmarks.served.host_floor [server options]``: the real server with each
model forward replaced by zero logits, to measure what the host alone costs a request.

Everything else is the service's own code on the device it picks: HTTP, admission, both
tokenizer families, the scheduler, planning, staging and the batch's one upload, the launch loop
over the five models' streams, the one download, scoring, delivery and the response. Only
``Runner._forward`` differs: it returns rows of a zero tensor made once per model and device, so
no kernel runs for a model. Two readings follow (``served`` runs it after the real loads):

- its 1-user p50 is the part of the service's 1-user latency that no GPU can take away; the
  issue's target allows one graph replay of the five plus 1.5 ms, so this floor must stay under
  1.5 ms for that target to be reachable at all;
- its throughput at many users is the host's ceiling: a served figure close to it is host-bound,
  one far below it is bound by the GPU or the pipeline.

Its answers are no classification (every model answers its first label at a uniform score);
they pass the load's checks because the checks test the contract, not the labels.
"""

from __future__ import annotations

import sys

from solution.server import __main__ as server  # sets OMP_WAIT_POLICY; torch loads after it


def main(argv: list[str] | None = None) -> int:
    import torch

    from solution.server.compute.buckets import Shape
    from solution.server.compute.runner import Runner

    def zero_forward(
        self: Runner, m: int, ids: torch.Tensor, mask: torch.Tensor, bucket: Shape | None
    ) -> tuple[torch.Tensor, bool]:
        """Model ``m``'s "logits" for ``ids``: rows of a cached zero tensor, grown when short."""
        cache: dict[int, torch.Tensor] = self.__dict__.setdefault("_floor_zeros", {})
        zeros = cache.get(m)
        rows = ids.shape[0]
        if zeros is None or zeros.shape[0] < rows:
            zeros = torch.zeros((max(rows, 128), self.num_labels[m]), device=ids.device)
            cache[m] = zeros
        return zeros[:rows], False

    Runner._forward = zero_forward  # type: ignore[method-assign]
    return server.main(argv)


if __name__ == "__main__":
    sys.exit(main())
