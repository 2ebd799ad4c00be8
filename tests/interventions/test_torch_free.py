"""The declarative layer must work where torch, nnsight and transformers are not installed.

The subprocess makes them impossible to import (a meta-path finder raises ImportError), then
imports ``interlace.interventions`` and uses all of it; any import of a blocked package, direct
or indirect, fails the run. This relies on ``interlace/__init__.py`` importing heavy modules
lazily.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BLOCKED = ("torch", "nnsight", "transformers")

SCRIPT = textwrap.dedent(
    """
    import importlib.abc
    import sys
    import tempfile
    from pathlib import Path

    BLOCKED = {blocked!r}

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{{name}} is blocked in this test")
            return None

    sys.meta_path.insert(0, Block())

    import numpy as np
    from safetensors.numpy import save_file

    import interlace.interventions as iv

    shape = iv.ModelShape(family="llama", n_layers=4, d_model=16, n_heads=4, n_kv_heads=2,
                          head_dim=4, d_mlp=32, vocab=50)
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "v.npy", np.ones(16, dtype=np.float32))
        save_file({{"k": np.ones(4, dtype=np.float32)}}, str(Path(tmp) / "k.safetensors"))
        graph = iv.Graph(
            interventions=[
                iv.AblateHeads(layer=1, heads=[0], mode="mean", reference=["a"]),
                iv.ScaleValueVectors(layer=0, indices=[1], factor=2.0),
                iv.ZeroValueVectors(layer=0, indices=[2]),
                iv.NegateValueVectors(layer=0, indices=[3]),
                iv.AddVector(site="resid_post", layers="all", vector=iv.VectorFile(path="v.npy")),
                iv.SteerKV(layer=2, vector=iv.VectorFile(path="k.safetensors")),
                iv.Patch(site="resid_pre", layer=3, source="b", positions=[-1]),
            ],
            capture=[iv.Capture(site="resid_post", layers="0-3")],
            generate=iv.Generate(max_new_tokens=2),
        )
        graph.validate(shape, prompt_lengths=[3], base_dir=tmp)
        assert iv.Graph.from_yaml(graph.to_yaml()) == graph
        assert iv.Graph.from_json(graph.to_json()) == graph
        graph.content_hash(base_dir=tmp)
        try:
            iv.Graph.from_dict({{"interventions": [{{"kind": "nope"}}]}})
        except iv.ValidationError:
            pass

    loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
    assert not loaded, loaded
    print("torch-free")
    """
).format(blocked=BLOCKED)


def test_interventions_work_without_torch_nnsight_transformers():
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, cwd=REPO
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "torch-free"


STUDY_SCRIPT = SCRIPT.split("import interlace.interventions as iv")[0] + textwrap.dedent(
    """
    from interlace import datasets
    from interlace.studies import Study
    from interlace.studies.conditions import build_graph
    from interlace.studies.scoring import check_countdown

    study = Study.from_dict({
        "dataset": {"task": "countdown", "n": 4},
        "vectors": {"v": [1.0, 2.0]},
        "conditions": {
            "base": {},
            "steer": {"interventions": [
                {"kind": "add_vector", "site": "resid_post", "layers": [0], "vector": "v"}
            ]},
        },
        "sweep": {"conditions": ["steer"],
                  "axes": {"coeff": {"field": "interventions[0].coeff", "values": [1, 2]}}},
        "generate": {"max_new_tokens": 4},
        "readouts": [{"kind": "generation", "score": "countdown"}],
    })
    assert Study.from_yaml(study.to_yaml()) == study
    graph = build_graph(study, "steer", {"coeff": 2}, {"v": [1.0, 2.0]})
    assert graph.interventions[0].coeff == 2
    rec = datasets.countdown(1)[0]
    assert check_countdown(rec["solution"], rec["numbers"], rec["target"])
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
    assert not loaded, loaded
    print("torch-free")
    """
)
TORCH_FREE = ("interventions", "studies/spec.py", "studies/conditions.py", "studies/scoring.py",
              "datasets.py")  # fmt: skip


def test_study_files_work_without_torch_nnsight_transformers():
    """A study is parsed and its graphs built before any model exists."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-c", STUDY_SCRIPT], env=env, capture_output=True, text=True, cwd=REPO
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "torch-free"


def test_no_module_of_the_package_names_a_heavy_import():
    """A static check, so the reason for a failure above is easy to find."""
    package = REPO / "interlace"
    paths = [p for name in TORCH_FREE for p in sorted((package / name).glob("*.py"))
             or [package / name]]  # fmt: skip
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            heavy = [name for name in names if name.split(".")[0] in BLOCKED]
            assert not heavy, f"{path.name} imports {heavy}"
