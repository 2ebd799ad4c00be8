"""The command line: validate, explain and run, on graph files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import pytest
import torch
import typer
from typer.testing import CliRunner

from interlace.cli import app

runner = CliRunner()
EXAMPLE = str(Path(__file__).parents[2] / "examples" / "ablate_and_steer.yaml")
PROMPT = "The Eiffel Tower is in the city of"


@pytest.fixture
def no_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if anything loads model weights."""
    import transformers

    def refuse(*args, **kwargs):
        raise AssertionError("weights were loaded")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", refuse)


def test_validate_accepts_the_example(no_weights: None) -> None:
    result = runner.invoke(app, ["validate", EXAMPLE, "--model", "smollm2-135m", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["valid"] and len(report["hash"]) == 64


def test_validate_lists_every_problem(tmp_path: Path, no_weights: None) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "interventions:\n"
        "  - {kind: ablate_heads, layer: 40, heads: [12]}\n"
        "  - {kind: add_vector, site: resid_post, layers: [3], vector: [1.0, 2.0]}\n"
    )
    result = runner.invoke(app, ["validate", str(bad), "--model", "smollm2-135m"])
    assert result.exit_code == 1
    lines = result.output.splitlines()  # one line per problem, whatever the terminal's width
    assert any(line.startswith("interventions[0].layer:") and "0-29" in line for line in lines)
    assert any(line.startswith("interventions[0].heads[0]:") and "0-8" in line for line in lines)
    assert any(line.startswith("interventions[1].vector:") and "576" in line for line in lines)


def test_validate_rejects_an_unknown_kind(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("interventions:\n  - {kind: ablate_everything, layer: 1}\n")
    result = runner.invoke(app, ["validate", str(bad)])
    assert result.exit_code == 2
    assert "ablate_heads" in result.output  # the valid kinds are listed


def test_explain_orders_by_execution_and_names_modules(no_weights: None) -> None:
    result = runner.invoke(app, ["explain", EXAMPLE])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    order = [
        next(i for i, line in enumerate(lines) if key in line)
        for key in (
            "resid_post[8]",
            "head_z[10]",
            "mlp_act[12]",
            "resid_post[12]",
            "resid_post[16]",
        )
    ]
    assert order == sorted(order)
    assert "input of model.layers.10.self_attn.o_proj" in result.output
    assert "[h*64:(h+1)*64]" in result.output
    assert "input of model.layers.12.mlp.down_proj" in result.output


def test_run_prints_top_tokens_and_requested_logprobs(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("interventions: []\n")
    result = runner.invoke(
        app, ["run", str(empty), "-p", PROMPT, "--tokens", " Paris", " London", "--json"]
    )
    assert result.exit_code == 0, result.output
    ex = json.loads(result.output[result.output.index("{") :])["examples"][0]
    assert ex["top"][0]["token"] == " Paris"
    import interlace as il

    m = il.load()
    ids = m.tokenizer(PROMPT, return_tensors="pt")
    with torch.inference_mode():
        ref = torch.log_softmax(m.hf(**ids).logits[0, -1], -1)
    for t in ex["tokens"]:
        assert abs(t["logprob"] - ref[t["id"]].item()) < 1e-4


def test_run_writes_a_store(tmp_path: Path) -> None:
    import xarray as xr

    out = tmp_path / "r.zarr"
    result = runner.invoke(app, ["run", EXAMPLE, "-p", PROMPT, "--out", str(out)])
    assert result.exit_code == 0, result.output
    ds = xr.open_zarr(out, consolidated=False)
    assert ds["resid_post"].sizes == {"example": 1, "layer": 3, "d_model": 576}
    assert list(ds["layer"].values) == [8, 12, 16]
    assert ds.attrs["graph_hash"]


def test_the_command_line_starts_without_torch() -> None:
    """``interlace --help`` and argument errors need no model: importing the CLI loads neither
    torch nor nnsight (they load when a command runs)."""
    import subprocess
    import sys

    code = (
        "import sys, interlace.cli; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'nnsight')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_output_off_a_terminal_is_never_wrapped(tmp_path: Path) -> None:
    """Piped output keeps every line whole, whatever the terminal's width (COLUMNS=40 here)
    and however long a path it prints, so a script or a test reads the same words anywhere."""
    import os
    import subprocess
    import sys

    out = tmp_path / ("a-directory-with-a-long-name-" * 4) / "results-of-the-run.zarr"
    env = {**os.environ, "COLUMNS": "40", "PYTHONPATH": str(Path(__file__).parents[2])}
    command = ["run", EXAMPLE, "-p", PROMPT, "--tokens", " Paris", "--out", str(out)]
    done = subprocess.run(
        [sys.executable, "-c", "from interlace.cli import app; app()", *command],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert f"wrote {out}" in lines
    assert any(line.startswith("  top: ' Paris' ") and line.count("'") >= 10 for line in lines)
    assert any(line.startswith("  ' Paris': logit ") and "logprob" in line for line in lines)


def test_fail_names_the_flags_of_the_fields_in_a_problem() -> None:
    """A problem's API field that is a parameter of the command becomes its flag (an argument:
    its metavar; ``aliases`` for a field passed on under another name); a path into a
    document keeps its name."""
    from interlace.cli.common import fail
    from interlace.interventions import Problem, ValidationError

    mini = typer.Typer()

    @mini.command()
    def probe(
        ctx: typer.Context,
        store: str,
        targets: Annotated[list[str] | None, typer.Option("--target", "-t")] = None,
        top_k: Annotated[int, typer.Option("--top")] = 3,
    ) -> None:
        problems = [
            Problem("targets[1]", "' Parisian' is 2 tokens", "one"),
            Problem("top_k", "0", ">= 1"),
            Problem("data", "has no 'layer' dim"),
            Problem("interventions[0].layer", "layer 40 of a 30-layer model", "0-29"),
        ]
        fail(ValidationError(problems), ctx, {"data": "store"})

    result = runner.invoke(mini, ["s.zarr"])
    assert result.exit_code == 2
    lines = [line.strip() for line in result.output.splitlines()]
    assert "--target: ' Parisian' is 2 tokens (allowed: one)" in lines
    assert "--top: 0 (allowed: >= 1)" in lines
    assert "STORE: has no 'layer' dim" in lines
    assert "interventions[0].layer: layer 40 of a 30-layer model (allowed: 0-29)" in lines
