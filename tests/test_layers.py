"""The layering of docs/architecture.md, enforced: import-linter's contracts in pyproject.toml
pass on the package, and an upward import planted in a copy of it makes them fail."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINT = Path(sys.executable).with_name("lint-imports")


def lint(root: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` over the package under ``root`` with ``root``'s pyproject.toml."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT), "--config", str(root / "pyproject.toml"), "--no-cache"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_contracts_hold() -> None:
    done = lint(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Contracts: 2 kept, 0 broken" in done.stdout


def test_an_upward_import_breaks_them(tmp_path: Path) -> None:
    shutil.copytree(
        ROOT / "interlace", tmp_path / "interlace", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    sites = tmp_path / "interlace" / "interventions" / "sites.py"
    sites.write_text(sites.read_text() + "\nimport interlace.runtime.run  # an upward import\n")
    done = lint(tmp_path)
    assert done.returncode != 0
    assert "Layers: imports point downward only BROKEN" in done.stdout
    assert "interlace.interventions.sites -> interlace.runtime.run" in done.stdout


def test_the_library_never_imports_the_package_root() -> None:
    """``import interlace as il`` inside the library hides its real dependencies."""
    pattern = re.compile(r"^\s*(import interlace(\s+as\s+\w+)?\s*$|from interlace import )", re.M)
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "interlace").rglob("*.py")
        if path != ROOT / "interlace" / "__init__.py" and pattern.search(path.read_text())
    ]
    assert offenders == []


def imported(path: Path) -> set[str]:
    """The modules a file imports, anywhere in it."""
    import ast

    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module.startswith("interlace"):  # what exactly: the module or its members
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
            else:
                names.add(node.module)
    return names


def test_trace_bodies_import_only_what_a_server_has() -> None:
    """execute.py and edits.py travel to an NDIF server by value: torch, nnsight, the stdlib
    and each other, nothing else (the simulated backend hides only interlace, relying on it)."""
    runtime = ROOT / "interlace" / "runtime"
    allowed = {"torch", "nnsight", "interlace.runtime.edits", *sys.stdlib_module_names}
    for name in ("execute.py", "edits.py"):
        roots = {
            "interlace.runtime.edits" if m.startswith("interlace.runtime.edits") else m
            for m in imported(runtime / name)
        }
        roots = {m if m.startswith("interlace") else m.split(".")[0] for m in roots}
        assert roots <= allowed, (name, roots - allowed)
