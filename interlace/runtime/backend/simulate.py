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


def _simulation(nm: Any) -> Any:
    """nnsight's ``remote="local"`` backend, made strict where it matters and narrow elsewhere.

    nnsight's own version takes every module a server lacks out of ``sys.modules`` while it
    deserializes; any thread that imports meanwhile (a store writer, the test runner's import
    hook) then re-imports half a package and leaves it broken (``_pytest`` without ``main`` was
    seen). What a server really lacks is interlace, so exactly interlace is hidden -- taken out
    of ``sys.modules`` and made unimportable, even through an editable install's import hook.
    That the trace bodies import nothing but torch and nnsight is checked statically
    (``tests/test_layers.py``).
    """

    class StrictSimulation(LocalSimulationBackend):
        def _hide_local_modules(self) -> dict:
            ours = [n for n in sys.modules if n == "interlace" or n.startswith("interlace.")]
            hidden = {"modules": {n: sys.modules.pop(n) for n in ours}, "paths": []}
            sys.meta_path.insert(0, _NO_INTERLACE)
            return hidden

        def _restore(self, hidden: dict) -> None:
            sys.meta_path.remove(_NO_INTERLACE)
            super()._restore(hidden)

    return StrictSimulation(nm)


_NO_INTERLACE = _NoInterlace()
