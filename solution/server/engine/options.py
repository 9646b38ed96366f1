"""Per-request options, decoded once by each front-end and checked once here.

``Options()`` is the API contract's behaviour: every model, one ``{"label", "score"}`` per model
(the top label and its probability), texts beyond a model's limit truncated. Every field is
optional; the engine computes only the models a request names.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from solution.server.compute.scoring import SINGLE
from solution.server.errors import InvalidInput

MAX_TOP_K = 1000  # far above any label set (ivanlau has 45); keeps a client's typo bounded


@dataclass(frozen=True)
class Options:
    models: tuple[str, ...] | None = None  # response keys to answer; None: every model
    top_k: int | None = SINGLE  # SINGLE: one prediction; k: the k best as a list; None: all
    raw_scores: bool = False  # logits instead of probabilities
    truncate: bool = True  # False: a text beyond a model's token limit is an error, not cut

    @property
    def is_default(self) -> bool:
        return self == DEFAULT

    def check(self, keys: Sequence[str]) -> None:
        """Refuse, naming the field, what the served models cannot honour."""
        if self.models is not None:
            if not self.models:
                raise InvalidInput("models: name at least one model, or leave the field out")
            for key in self.models:
                if key not in keys:
                    raise InvalidInput(
                        f"models: unknown model {key!r}; the models are {', '.join(keys)}"
                    )
            if len(set(self.models)) != len(self.models):
                raise InvalidInput("models: each model may be named once")
        if self.top_k is not None and not SINGLE <= self.top_k <= MAX_TOP_K:
            raise InvalidInput(f"top_k: {self.top_k} is not a count from 1 to {MAX_TOP_K}")


DEFAULT = Options()
