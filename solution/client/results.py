"""What both clients return, and the errors they raise; no I/O here."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass(frozen=True, slots=True)
class Prediction:
    """A label and its score: the softmax probability by default, the logit with
    ``raw_scores``, the sigmoid probability of a multi-label model."""

    score: float
    label: str


# Model key -> its answer, in the server's configured model order (as HTTP /process answers):
# one Prediction (the top label), or with ``top_k`` a list of them, best first. Only the models
# a request named (``models``) are present.
Result = dict[str, Prediction | list[Prediction]]


def to_json(results: Result | list[Result]) -> Any:
    """The JSON value HTTP ``/process`` answers: an object per text, an array for several."""
    if isinstance(results, list):
        return [to_json(r) for r in results]
    return {key: _answer_json(answer) for key, answer in results.items()}


def _answer_json(answer: Prediction | list[Prediction]) -> Any:
    if isinstance(answer, list):
        return [{"score": p.score, "label": p.label} for p in answer]
    return {"score": answer.score, "label": answer.label}


def from_json(value: Any) -> Result:
    """One ``/process`` object back into a ``Result``."""
    return {key: _answer(answer) for key, answer in value.items()}


def _answer(value: Any) -> Prediction | list[Prediction]:
    if isinstance(value, list):
        return [_prediction(p) for p in value]
    return _prediction(value)


def _prediction(value: Any) -> Prediction:
    return Prediction(float(value["score"]), str(value["label"]))


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """One served model as HTTP ``GET /models`` and gRPC ``ListModels`` describe it."""

    key: str  # the response key
    source: str  # hub id or local folder it was loaded from
    architecture: str  # for example XLMRobertaForSequenceClassification
    labels: tuple[str, ...]  # by class index, as the answers name them
    tokenizer_family: str  # models of one family share one tokenization
    device: str  # cpu, cuda:0
    dtype: str  # fp32, fp16, bf16
    max_tokens: int  # tokens per text, special tokens included
    function: str  # softmax, sigmoid or none: how logits become scores

    @classmethod
    def from_fields(cls, value: Mapping[str, Any]) -> ModelInfo:
        """From a ``GET /models`` entry (or a message's fields); fields a newer server adds are
        left out rather than refused."""
        return cls(
            **{f.name: value[f.name] for f in fields(cls) if f.name != "labels"},
            labels=tuple(value["labels"]),
        )

    def to_json(self) -> dict[str, Any]:
        """The ``GET /models`` entry, fields in its order."""
        return {**asdict(self), "labels": list(self.labels)}


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
