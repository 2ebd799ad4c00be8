"""Errors of the activation store."""

from __future__ import annotations


class StoreError(Exception):
    """A store cannot be written or read as asked; the message says why and what to do."""
