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
        _left_padded(tokenizer)
        wrapped = TransformersModel(hf_model, tokenizer=tokenizer, task="text-generation")
        return cls(wrapped, tokenizer, adapter, name, source or name)

    @classmethod
    def remote(cls, repo: str, name: str) -> Model:
        """A model whose weights stay on an NDIF server: its config, tokenizer and module tree
        (on the meta device) from ``repo``, a hub id or a directory the server also serves;
        no weights are read, so it runs with ``backend="ndif"`` only."""
        from nnsight import TransformersModel

        wrapped = TransformersModel(repo, task="text-generation")
        adapter = adapter_for(wrapped._module.config)
        _left_padded(wrapped.tokenizer)
        return cls(wrapped, wrapped.tokenizer, adapter, name, repo)

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

    @property
    def has_weights(self) -> bool:
        """False for a :meth:`remote` model, whose weights live on the server only."""
        return self.device.type != "meta"

    def weight(self, name: str, layer: int | None = None) -> Any:
        """An orientation-normalised weight such as ``W_out`` (see the adapter docs)."""
        return self.adapter.weight(self.hf, name, layer)

    def __repr__(self) -> str:
        s = self.shape
        return (
            f"Model({self.name!r}, family={s.family}, layers={s.n_layers}, d_model={s.d_model}, "
            f"heads={s.n_heads}/{s.n_kv_heads} kv, d_mlp={s.d_mlp}, vocab={s.vocab})"
        )


def _left_padded(tokenizer: Any) -> None:
    """Batches are left-padded: real tokens at the right, padded with end-of-sequence if the
    tokenizer has no pad token."""
    if tokenizer is None:
        return
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
