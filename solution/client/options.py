"""Per-request options as both clients take them; each client encodes them for its protocol.

Only what the wire cannot carry is checked here: the types (``truncate="no"`` is truthy, a bare
string of models would be sent as its letters), and the two values gRPC's encoding would read as
something else (``top_k`` 0 means every label there, and an empty ``models`` every model). Every
range and name check is the server's, so its messages are the one source of them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Final, Literal, TypedDict


class Single(Enum):
    """The type of ``SINGLE``: ``top_k``'s default, distinct from every count and from None."""

    SINGLE = "single"


SINGLE: Final = (
    Single.SINGLE
)  # top_k left out: one Prediction per model, exactly as the contract answers
TopK = int | None | Literal[Single.SINGLE]


class OptionFields(TypedDict, total=False):
    """The keyword arguments of every client's ``classify`` and ``classify_batch``."""

    models: Iterable[str] | None  # answer only these model keys; None: every model
    top_k: TopK  # k: the k best labels per model, best first; None: every label
    raw_scores: bool  # the models' logits instead of probabilities
    truncate: bool  # False: a text over a model's token limit is refused instead of cut


@dataclass(frozen=True, slots=True)
class Options:
    """One request's options, checked for type on construction (``Options()`` is the contract)."""

    models: Iterable[str] | None = None  # kept as a tuple
    top_k: TopK = SINGLE
    raw_scores: bool = False
    truncate: bool = True

    def __post_init__(self) -> None:
        if self.models is not None:
            if isinstance(self.models, str | bytes) or not isinstance(self.models, Iterable):
                raise TypeError(f"models: expected model names, got {self.models!r}")
            models = tuple(self.models)
            if not all(isinstance(m, str) for m in models):
                raise TypeError(f"models: every model name must be a str, got {models!r}")
            if not models:
                raise ValueError("models: name at least one model, or pass None for every model")
            object.__setattr__(self, "models", models)
        if self.top_k is not SINGLE and self.top_k is not None:
            if not isinstance(self.top_k, int) or isinstance(self.top_k, bool):
                raise TypeError(f"top_k: expected an int or None, got {self.top_k!r}")
            if self.top_k < 1:
                raise ValueError(
                    f"top_k: expected a count from 1 up, or None for every label, got {self.top_k}"
                )
        for name in ("raw_scores", "truncate"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name}: expected True or False, got {getattr(self, name)!r}")

    @property
    def ranked(self) -> bool:
        """Whether each model answers a ranked list rather than one Prediction."""
        return self.top_k is not SINGLE

    @property
    def is_default(self) -> bool:
        """Nothing asked beyond the contract: the client sends the bare contract request."""
        return self == DEFAULT


DEFAULT = Options()
