"""interlace: declarative mechanistic-interpretability experiments on language models.

Interventions are declared as data (``interlace.interventions``), compiled to nnsight traces
(``interlace.runtime``) and run on a model loaded with :func:`load`. The top level imports
lazily, so ``import interlace.interventions`` pulls in neither torch nor nnsight.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "load": "interlace.models.loading",
    "Model": "interlace.models.model",
    "ModelLoadError": "interlace.models.errors",
    "run": "interlace.runtime.run",
    "RunResult": "interlace.runtime.forward",
    "ChatPrompt": "interlace.runtime.prompts",
    "Graph": "interlace.interventions",
    "Capture": "interlace.interventions",
    "Generate": "interlace.interventions",
    "ValidationError": "interlace.interventions",
    "cache": "interlace.jobs.cache",
    "open_store": "interlace.stores.reader",
    "StoreError": "interlace.stores.errors",
    "ForkReadout": "interlace.interventions",
    "Every": "interlace.interventions",
    "AtTokens": "interlace.interventions",
    "AfterMatch": "interlace.interventions",
    "confidence": "interlace.runtime.confidence",
    "logit_lens": "interlace.analyses.lens",
    "TunedLens": "interlace.analyses.tuned_lens",
    "train_tuned_lens": "interlace.analyses.tuned_lens",
    "train_probes": "interlace.analyses.probes",
}

# Every intervention kind is exported too (``il.AddVector``), by the name it is registered under
# in interlace.interventions.kinds: a new kind needs no line here.
_KINDS = (
    "AblateHeads",
    "AddVector",
    "NegateValueVectors",
    "Patch",
    "ScaleValueVectors",
    "SteerKV",
    "ZeroValueVectors",
)

__all__ = sorted([*_EXPORTS, *_KINDS]) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    kinds = importlib.import_module("interlace.interventions.kinds")
    if name in kinds.__all__:
        return getattr(kinds, name)
    raise AttributeError(f"module 'interlace' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
