"""The ``local`` backend: the trace bodies run in this process, on the model's own weights."""

from __future__ import annotations

from interlace.models.model import Model
from interlace.runtime import execute as bodies
from interlace.runtime.backend.base import Backend


def run(model: Model, steps: list[dict], backend: Backend) -> list[dict]:
    """Run ``steps`` here (``backend`` has no setting that applies)."""
    return bodies.execute(model.nnsight, steps)
