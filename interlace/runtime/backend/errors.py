"""What a remote run raises: :class:`NDIFError` and its kinds, each saying what happened and
what to do."""

from __future__ import annotations


class NDIFError(RuntimeError):
    """A remote run failed; the message says why and what to do."""


class ServerUnavailable(NDIFError):
    """The server could not be reached (or stayed overloaded) through every retry."""


class ModelNotAvailable(NDIFError):
    """The server does not know the model or cannot deploy it."""


class RemoteJobError(NDIFError):
    """The job raised on the server; the message holds the server's traceback."""


class VersionSkew(NDIFError):
    """The client's and the server's nnsight differ, so trace code may not run the same."""


class ResultTooLarge(NDIFError):
    """The results would exceed the backend's ``max_result_bytes``."""
