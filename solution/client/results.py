"""What both clients return, and the errors they raise; no I/O here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Prediction:
    """One model's answer for one text: the top label and its softmax probability."""

    score: float
    label: str


# Model key -> prediction, in the server's configured model order (as HTTP /process answers).
Result = dict[str, Prediction]


def to_json(results: Result | list[Result]) -> Any:
    """The JSON value HTTP ``/process`` answers: an object per text, an array for several."""
    if isinstance(results, list):
        return [to_json(r) for r in results]
    return {key: {"score": p.score, "label": p.label} for key, p in results.items()}


def from_json(value: Any) -> Result:
    """One ``/process`` object back into a ``Result``."""
    return {key: Prediction(float(p["score"]), str(p["label"])) for key, p in value.items()}


class ClientError(Exception):
    """Base of the clients' errors; ``str(error)`` is one line for a person to read."""


class Unreachable(ClientError):
    """No answer from the server: nothing listens there, or the connection broke."""


class TimedOut(ClientError):
    """The client's timeout passed before the server answered."""


class Refused(ClientError):
    """The server answered with an error status.

    ``status`` is the HTTP status code (``int``) or the gRPC status code name (``str``, for
    example ``"RESOURCE_EXHAUSTED"``); ``message`` is the server's explanation.
    """

    def __init__(self, status: int | str, message: str):
        super().__init__(f"server refused the request ({status}): {message}")
        self.status = status
        self.message = message
