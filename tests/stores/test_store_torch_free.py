"""Reading a store imports neither torch nor nnsight (nor transformers): the store format does
not depend on the job that wrote it. A real store is written here, then read in a fresh
process -- opened, loaded, flattened, described -- which then lists the heavy modules loaded.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from test_store_resume import tiny

import interlace as il

REPO = Path(__file__).resolve().parents[2]
HEAVY = {"nnsight", "torch", "transformers"}

READ = textwrap.dedent(
    """
    import sys

    import interlace as il
    import interlace.stores

    path = sys.argv[1]
    store = interlace.stores.open_store(path)
    assert float(abs(store["resid_post"]).sum()) > 0
    rows = interlace.stores.real_tokens(il.open_store(path).load()["mlp_act"])
    assert rows.sizes["token"] == int(store["n_tokens"].sum())
    facts = interlace.stores.describe(path)
    assert facts["completeness"]["complete"] and facts["sites"]["mlp_act"]["dtype"] == "bfloat16"
    print(sorted({{m.split(".")[0] for m in sys.modules}} & {heavy!r}))
    """
).format(heavy=HEAVY)


def test_reading_a_store_imports_no_torch_nor_nnsight(tmp_path: Path) -> None:
    out = tmp_path / "s.zarr"
    data = [{"text": "one two three", "label": 1}, {"text": "four", "label": 0}]
    report = il.cache(
        tiny(), data, out, sites="resid_post,mlp_act", positions="all", layers="0-1",
        dtype="bfloat16", batch_size=1, progress=False,
    )  # fmt: skip
    assert report.status == "created"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    read = subprocess.run(
        [sys.executable, "-c", READ, str(out)], env=env, capture_output=True, text=True, cwd=REPO
    )
    assert read.returncode == 0, read.stderr
    assert read.stdout.strip() == "[]", f"reading a store imported {read.stdout.strip()}"
