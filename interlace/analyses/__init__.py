"""Analyses of activations and weights: logit and tuned lens, linear probes, vocabulary
projection, vector extraction, head rankings and model comparison, each with a plot
(:mod:`interlace.analyses.plots`).

They read activations as xarray objects shaped like a store's variables or ``il.run`` captures,
``(example, [layer], [position], feature)`` (a dask-backed store is read one layer at a time),
and weights through the site vocabulary; they return xarray objects. Bad arguments raise
:class:`interlace.ValidationError` before any model runs. Imports are lazy, as at the top level.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "logit_lens": "interlace.analyses.lens",
    "read_lens": "interlace.analyses.lens",
    "lens_kl": "interlace.analyses.lens",
    "first_top1_layer": "interlace.analyses.lens",
    "unembed": "interlace.analyses.lens",
    "TunedLens": "interlace.analyses.tuned_lens",
    "train_tuned_lens": "interlace.analyses.tuned_lens",
    "compare_lenses": "interlace.analyses.tuned_lens",
    "unembedding_hash": "interlace.analyses.tuned_lens",
    "UnembeddingMismatchWarning": "interlace.analyses.tuned_lens",
    "train_probes": "interlace.analyses.probes",
    "project": "interlace.analyses.vocab",
    "value_vector": "interlace.analyses.vocab",
    "aligned_value_vectors": "interlace.analyses.vocab",
    "mean_difference": "interlace.analyses.vectors",
    "paired_differences": "interlace.analyses.vectors",
    "position_difference": "interlace.analyses.vectors",
    "random_directions": "interlace.analyses.vectors",
    "difference_pca": "interlace.analyses.vectors",
    "steering_effect": "interlace.analyses.vectors",
    "ov_circuit": "interlace.analyses.heads",
    "direction_scores": "interlace.analyses.heads",
    "value_vector_scores": "interlace.analyses.heads",
    "rank_heads": "interlace.analyses.heads",
    "ablation_spec": "interlace.analyses.heads",
    "compare_weights": "interlace.analyses.compare",
    "changed_matrices": "interlace.analyses.compare",
    "embedding_distance_correlation": "interlace.analyses.compare",
    "shared_tokens": "interlace.analyses.compare",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'interlace.analyses' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
