"""The ``simulate`` backend: nnsight's ``remote="local"``, the remote path (serialize with
interlace's code by value, deserialize with interlace hidden, run) in this process, without a
server. It checks that a run would work remotely; the tests run every trace body this way."""

from __future__ import annotations

import importlib.abc
import sys
from typing import Any

from nnsight.intervention.backends.local import LocalSimulationBackend

from interlace.models.model import Model
from interlace.runtime.backend.base import Backend
from interlace.runtime.backend.session import check_size, run_session, share_tensors


def run(model: Model, steps: list[dict], backend: Backend) -> list[dict]:
    """Run ``steps`` in one simulated remote session."""
    check_size(steps, backend)
    return run_session(model.nnsight, share_tensors(steps), _simulation(model.nnsight))


class _NoInterlace(importlib.abc.MetaPathFinder):
    """Makes ``import interlace`` fail, as on a server that does not have it."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == "interlace" or name.startswith("interlace."):
            raise ModuleNotFoundError(f"No module named {name!r} (simulated NDIF server)")


#: The test runner's modules. nnsight's simulation takes every module a server lacks out of
#: ``sys.modules`` while it deserializes; pytest's import hook (on ``sys.meta_path``) then
#: re-imports parts of pytest mid-test, and the suite saw ``_pytest`` without ``main``
#: afterwards. Trace code never uses them, so they stay.
_RUNNER_MODULES = {"_pytest", "pytest", "pluggy", "iniconfig", "hypothesis"}


def _simulation(nm: Any) -> Any:
    """nnsight's ``remote="local"`` backend, made strict: it hides modules found on
    ``sys.path`` while it deserializes, but an editable install's import hook would still find
    interlace; this one cannot."""

    class StrictSimulation(LocalSimulationBackend):
        def _hide_local_modules(self) -> dict:
            hidden = super()._hide_local_modules()
            modules = hidden["modules"]
            for name in [n for n in modules if n.split(".")[0] in _RUNNER_MODULES]:
                sys.modules[name] = modules.pop(name)
            sys.meta_path.insert(0, _NO_INTERLACE)
            return hidden

        def _restore(self, hidden: dict) -> None:
            sys.meta_path.remove(_NO_INTERLACE)
            super()._restore(hidden)

    return StrictSimulation(nm)


_NO_INTERLACE = _NoInterlace()
