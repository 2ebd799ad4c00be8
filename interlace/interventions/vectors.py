"""Where a vector (a steering direction, a KV offset) comes from: written inline, read from a
``.npy`` or ``.safetensors`` file, or (later) taken from an activation store.

Files are read safely: ``.npy`` with ``allow_pickle=False`` and ``.safetensors`` (which cannot
hold code), so a document can never make interlace unpickle anything. numpy and safetensors
are imported only when a file is read. Relative paths resolve against ``base_dir`` (the CLI
passes the directory of the graph file), else against the working directory.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pydantic

from interlace.interventions.base import Spec

VECTOR_SUFFIXES = (".npy", ".safetensors")
VECTOR_ALLOWED = (
    "a list of floats, {path: FILE.npy|FILE.safetensors, key: NAME}, or {store, variable, sel}"
)


class VectorError(ValueError):
    """A vector could not be loaded: missing or unreadable file, wrong shape or content."""


class VectorFile(Spec):
    """A 1-D vector stored in a ``.npy`` file or as one tensor of a ``.safetensors`` file.

    ``key`` names the tensor in a ``.safetensors`` file; it may be left out when the file holds
    exactly one. When hashing a graph the file's SHA-256 is added, so the hash follows its content.
    """

    path: str = pydantic.Field(description="a .npy or .safetensors file")
    key: str | None = None

    @pydantic.field_validator("path", mode="before")
    @classmethod
    def _path_text(cls, value: Any) -> Any:
        return os.fspath(value) if isinstance(value, os.PathLike) else value

    @pydantic.field_validator("path")
    @classmethod
    def _known_suffix(cls, value: str) -> str:
        if "\0" in value or Path(value).suffix.lower() not in VECTOR_SUFFIXES:
            raise ValueError(f"a vector file must be one of {', '.join(VECTOR_SUFFIXES)}")
        return value

    @pydantic.model_serializer(mode="wrap")
    def _with_digest(
        self, handler: pydantic.SerializerFunctionWrapHandler, info: pydantic.SerializationInfo
    ) -> dict[str, Any]:
        data = handler(self)
        context = info.context or {}
        if context.get("hash_files"):
            digest = self.digest(context.get("base_dir"))
            if digest is not None:
                data["sha256"] = digest
        return data

    def resolve(self, base_dir: str | Path | None = None) -> Path:
        path = Path(self.path).expanduser()
        return Path(base_dir) / path if base_dir is not None and not path.is_absolute() else path

    def digest(self, base_dir: str | Path | None = None) -> str | None:
        """SHA-256 (hex) of the file's bytes, or None if it cannot be read."""
        sha = hashlib.sha256()
        try:
            with open(self.resolve(base_dir), "rb") as file:
                for chunk in iter(lambda: file.read(1 << 20), b""):
                    sha.update(chunk)
        except (OSError, RuntimeError):  # RuntimeError: expanduser of an unknown ~user
            return None
        return sha.hexdigest()


class StoreVector(Spec):
    """A vector taken from an activation store: ``variable`` at the coordinates ``sel``.

    A placeholder until the activation store exists: it parses, but cannot be loaded yet.
    """

    store: str
    variable: str
    sel: dict[str, int | float | str] = pydantic.Field(default_factory=dict)


def _as_list(value: Any) -> Any:
    """Let Python users pass a numpy array or a tensor; stored as a plain list of floats."""
    if not isinstance(value, (list, str, dict)) and hasattr(value, "tolist"):
        return value.tolist()
    return value


def _source(value: Any) -> str | None:
    """Which form of :data:`VectorRef` a value is written in (the union's tag)."""
    if isinstance(value, VectorFile) or (isinstance(value, dict) and "path" in value):
        return "VectorFile"
    if isinstance(value, StoreVector) or (isinstance(value, dict) and "store" in value):
        return "StoreVector"
    if isinstance(value, list) or (not isinstance(value, (str, dict)) and hasattr(value, "tolist")):
        return "list"
    return None


VectorRef = Annotated[
    Annotated[
        list[float],
        pydantic.BeforeValidator(_as_list),
        pydantic.Field(min_length=1),
        pydantic.Tag("list"),
    ]
    | Annotated[VectorFile, pydantic.Tag("VectorFile")]
    | Annotated[StoreVector, pydantic.Tag("StoreVector")],
    pydantic.Discriminator(
        _source,
        custom_error_type="vector_type",
        custom_error_message="not a vector",
        custom_error_context={"allowed": VECTOR_ALLOWED},
    ),
]
"""A vector: inline floats, a :class:`VectorFile`, or a :class:`StoreVector`."""


def load_vector(
    ref: list[float] | VectorFile | StoreVector, base_dir: str | Path | None = None
) -> np.ndarray:
    """The vector as a 1-D float32 numpy array; :class:`VectorError` if it cannot be had."""
    if isinstance(ref, StoreVector):
        raise VectorError(
            "vectors from an activation store are not supported yet (they arrive with the store); "
            "use an inline list or a .npy/.safetensors file"
        )
    if isinstance(ref, VectorFile):
        array = _read(ref, base_dir)
        where = ref.path
    else:
        array, where = np.asarray(ref, dtype=np.float64), "inline vector"
    if array.ndim != 1 or array.size == 0:
        raise VectorError(f"{where}: expected a non-empty 1-D vector, got shape {array.shape}")
    if array.dtype.kind not in "iuf":
        raise VectorError(f"{where}: expected real numbers, got dtype {array.dtype}")
    with np.errstate(over="ignore"):
        vector = array.astype(np.float32)
    if not np.isfinite(vector).all():
        raise VectorError(f"{where}: contains NaN or infinity, or values beyond float32's range")
    return vector


def _read(ref: VectorFile, base_dir: str | Path | None) -> np.ndarray:
    """The array stored in a vector file. Readers raise assorted exception types for damaged
    files, so any failure while reading is reported as a :class:`VectorError`."""
    try:
        path = ref.resolve(base_dir)
        if not path.is_file():
            raise VectorError(f"no such file (looked for {path.absolute()})")
        if path.suffix.lower() == ".npy":
            if ref.key is not None:
                raise VectorError("'key' applies to .safetensors files only")
            with open(path, "rb") as file:
                array = np.load(file, allow_pickle=False)
            if not isinstance(array, np.ndarray):
                raise VectorError("not a single .npy array")
            return array
        return _read_safetensors(path, ref.key)
    except VectorError as exc:
        raise VectorError(f"{ref.path}: {exc}") from None
    except Exception as exc:
        raise VectorError(f"{ref.path}: cannot read ({type(exc).__name__}: {exc})") from exc


def _read_safetensors(path: Path, key: str | None) -> np.ndarray:
    from safetensors import safe_open

    with safe_open(str(path), framework="np") as file:
        keys = list(file.keys())
        if key is None and len(keys) != 1:
            raise VectorError(f"holds {len(keys)} tensors; name one with 'key': {', '.join(keys)}")
        if key is not None and key not in keys:
            raise VectorError(f"no tensor {key!r}; it holds: {', '.join(keys)}")
        return file.get_tensor(key if key is not None else keys[0])
