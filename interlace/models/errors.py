"""Errors raised while resolving and loading models."""


class ModelLoadError(ValueError):
    """A model name, path or file could not be turned into a model; the message says why."""
