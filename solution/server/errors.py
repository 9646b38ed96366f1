"""The one error hierarchy of the service, shared by every layer.

The engine and the compute layer raise only these (compute: a text too long for ``truncate:
false``, a model or tokenizer failing on a text); each front-end maps them to its own status
codes in one table (``http.routes.ERROR_STATUS``, ``rpc.servicer.ERROR_STATUS``), so a new error
is one class here and one row per table. It sits beside ``config`` at the ground of the package
because every layer needs it and it needs nothing.
"""

from __future__ import annotations


class ServiceError(Exception):
    """Base class: ``str(error)`` is a message safe to show to the client."""


class InvalidInput(ServiceError):
    """The request itself is wrong (bad JSON, wrong type, too many texts)."""


class Overloaded(ServiceError):
    """Admission refused: the queue is full. Retrying later is the right reaction."""


class DeadlineExceeded(ServiceError):
    """The client's deadline passed before its texts were computed."""


class ModelFailure(ServiceError):
    """A model raised on this text; other texts of the batch were still answered."""


class ShuttingDown(ServiceError):
    """The service is draining after SIGTERM and accepts no new work."""


class NotReady(ServiceError):
    """The models are still loading or warming up."""

    def __init__(self, message: str = "models are still loading"):
        super().__init__(message)
