"""The one error hierarchy of the service core.

The engine raises only these; each front-end maps them to its own status codes in one table
(``http`` and ``grpc_service``), so a new error is one class here and one row per table.
"""

from __future__ import annotations


class ServiceError(Exception):
    """Base class: ``str(error)`` is a message safe to show to the client."""


class InvalidInput(ServiceError):
    """The request itself is wrong (bad JSON, wrong type, too many texts)."""


class Overloaded(ServiceError):
    """Admission refused: the queue is full. Retrying later is the right reaction."""

    retry_after_s = 1


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
