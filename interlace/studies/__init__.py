"""Studies: named conditions x sweep axes x a dataset, declared in one file, run into one
labelled results store, and reported.

``interlace.studies.spec`` (the file format) and ``interlace.studies.conditions`` are
torch-free; running (``run_study``), reading (``open_results``) and reporting import the
runtime when called.
"""

from __future__ import annotations

from typing import Any

from interlace.studies.spec import Study

__all__ = ["Study", "open_results", "run_study", "write_report"]

_LAZY = {
    "run_study": "interlace.studies.execute",
    "open_results": "interlace.studies.execute",
    "write_report": "interlace.studies.report",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'interlace.studies' has no attribute {name!r}")
