"""``interlace demo`` end to end on the bundled model: the study, its store, the report, the
probe. It is the README's main job, so CI runs it whole (about 2.5 minutes on one CPU thread)."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from interlace.cli import app
from interlace.studies.execute import open_results


@pytest.mark.slow
# ~2.5 min alone; on torch's plain kernels (ATEN_CPU_CAPABILITY=default) with other jobs on the
# cores it overran the default 600 s, so it gets a limit of its own
@pytest.mark.timeout(1800)
def test_demo_runs_end_to_end(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = CliRunner().invoke(app, ["demo"])
    assert out.exit_code == 0, out.output
    demo = tmp_path / "interlace-demo"
    results = open_results(demo / "results.zarr").load()
    assert results.sizes["condition"] == 5 and results.sizes["coeff"] == 4
    # the steering sweep moves the answer's confidence: +0.5 toward "Yes" beats -0.5
    steer = results["confidence_log_odds"].sel(condition="steer").isel(confidence_checkpoint=0)
    assert float(steer.sel(coeff=0.5).mean()) > float(steer.sel(coeff=-0.5).mean()) + 1.0
    # and the next-token answer: log-odds of "Yes" over "No" rise with the coefficient
    lp = results["answer_logprob"].sel(condition="steer")
    log_odds = (lp.sel(answer_token="Yes") - lp.sel(answer_token="No")).mean("example")
    assert (np.diff(log_odds.values) > 0).all(), log_odds.values
    assert np.isfinite(results["resid_post"].values).all()
    assert (demo / "statements.zarr").exists() and "test accuracy" in out.output, out.output
    report = (demo / "report.md").read_text()
    for section in ("## answer_correct", "## confidence", "## Probe"):
        assert section in report
    for png in ("answer_correct.png", "confidence_curve.png", "probe.png"):
        assert (demo / png).read_bytes()[:4] == b"\x89PNG"
    assert "demo done" in out.output
    rerun = CliRunner().invoke(app, ["demo"])  # the store is reused, nothing recomputed
    assert rerun.exit_code == 0 and "nothing to do" in " ".join(rerun.output.split())
