"""Resolving a study's named vectors once the model is loaded.

A file keeps its reference (the graph then names the file, and its hash includes the file's
bytes); an inline list is used as it is; ``unembed`` takes the token's row of ``W_U``;
``random`` draws with :func:`interlace.analyses.vectors.random_directions`, so a study's random
baseline is the same direction the analyses draw for the same seed and vector.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from interlace.interventions import Problem, ValidationError, VectorFile, load_vector
from interlace.studies.spec import RandomVector, Study, UnembedVector

if TYPE_CHECKING:
    from interlace.models.model import Model


def needs_weights(study: Study) -> bool:
    """Whether resolving the study's vectors reads the model's weights (``unembed``)."""
    return any(isinstance(v, UnembedVector) for v in study.vectors.values())


def resolve_vectors(study: Study, model: Model, base_dir: Path) -> dict[str, Any]:
    """Each named vector as graph data: a list of floats, or a vector file's fields."""
    from interlace.analyses.vectors import random_directions

    values: dict[str, np.ndarray] = {}

    def value(name: str) -> np.ndarray:
        if name not in values:
            vec = study.vectors[name]
            if isinstance(vec, UnembedVector):
                ids = model.tokenizer(vec.unembed, add_special_tokens=False)["input_ids"]
                if not ids:
                    raise ValidationError(
                        [Problem(f"vectors.{name}.unembed", f"{vec.unembed!r} has no tokens")]
                    )
                values[name] = model.weight("W_U")[ids[0]].detach().double().numpy()
            elif isinstance(vec, RandomVector):
                if vec.like is not None:
                    like = value(vec.like)
                else:
                    width = vec.width or model.shape.d_model
                    norm = vec.norm if vec.norm is not None else 1.0
                    like = np.full(width, norm / np.sqrt(width))
                values[name] = random_directions(like, 1, vec.random).values[0]
            else:
                values[name] = load_vector(vec, base_dir).astype(np.float64)
        return values[name]

    out: dict[str, Any] = {}
    for name, vec in study.vectors.items():
        out[name] = vec.to_dict() if isinstance(vec, VectorFile) else value(name).tolist()
    return out
