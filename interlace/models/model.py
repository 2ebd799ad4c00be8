"""The :class:`Model` handle: nnsight model + tokenizer + architecture adapter."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from interlace.interventions.sites import ModelShape
from interlace.models.adapters import Adapter, adapter_for


@dataclass
class Model:
    """A loaded model as interlace uses it.

    ``nnsight`` is the ``nnsight.TransformersModel`` wrapping the weights: the escape hatch for
    custom traces (``with model.nnsight.trace(...)``). ``hf`` is the underlying transformers
    model, ``adapter`` maps sites to its modules and weights.
    """

    nnsight: Any
    tokenizer: Any
    adapter: Adapter
    name: str
    source: str

    @classmethod
    def wrap(cls, hf_model: Any, tokenizer: Any, name: str, source: str | None = None) -> Model:
        """Wrap an already loaded transformers model (e.g. a tiny random one in tests)."""
        from nnsight import TransformersModel

        adapter = adapter_for(hf_model.config)
        if tokenizer is not None and tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        if tokenizer is not None:
            tokenizer.padding_side = "left"
        wrapped = TransformersModel(hf_model, tokenizer=tokenizer, task="text-generation")
        return cls(wrapped, tokenizer, adapter, name, source or name)

    @property
    def hf(self) -> Any:
        """The raw transformers model (plain PyTorch; hooks and weights live here)."""
        return self.nnsight._module

    @property
    def shape(self) -> ModelShape:
        return self.adapter.shape

    @property
    def device(self) -> Any:
        return next(self.hf.parameters()).device

    def weight(self, name: str, layer: int | None = None) -> Any:
        """An orientation-normalised weight such as ``W_out`` (see the adapter docs)."""
        return self.adapter.weight(self.hf, name, layer)

    def __repr__(self) -> str:
        s = self.shape
        return (
            f"Model({self.name!r}, family={s.family}, layers={s.n_layers}, d_model={s.d_model}, "
            f"heads={s.n_heads}/{s.n_kv_heads} kv, d_mlp={s.d_mlp}, vocab={s.vocab})"
        )
