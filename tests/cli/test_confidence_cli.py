"""``interlace confidence`` on the command line, with its plot."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.image
from typer.testing import CliRunner

from interlace.cli import app

runner = CliRunner()


def test_confidence_command_json_and_plot(tmp_path: Path) -> None:
    plot = tmp_path / "curve.png"
    result = runner.invoke(app, [
        "confidence", "--prompt", "Is 91 a prime number? Answer Yes or No.",
        "--response", "91 is odd. 91 = 7 * 13, so 91 is not prime.",
        "--choices", " Yes", " No", "--every", "4", "--json", "--plot", str(plot),
    ])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output[result.output.index("{"):])
    assert report["choices"] == [" Yes", " No"]
    points = [r["token_index"] for r in report["checkpoints"]]
    assert points[:3] == [4, 8, 12]
    first = report["checkpoints"][0]
    assert abs(first["log_odds"] - (first["logprob"][" Yes"] - first["logprob"][" No"])) < 1e-6
    image = matplotlib.image.imread(plot)
    assert image.shape[0] > 200 and image.shape[1] > 400 and image[..., :3].std() > 0.05


def test_confidence_command_needs_one_response_source() -> None:
    result = runner.invoke(app, ["confidence", "--prompt", "Hi", "--choices", " Yes"])
    assert result.exit_code == 2
    assert "exactly one of --response" in result.output


def test_confidence_command_names_its_flags_in_errors() -> None:
    """The library's problems name API fields (``steer``); the command shows its flags."""
    args = ["confidence", "-p", "Hi", "--choices", " Yes", "--response", "Yes", "--steer", "up"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "--steer: got 'up' (allowed: 'generation', 'readout' or 'both')" in result.output
