"""Linear probes: the offline arithmetic task on the bundled model, scikit-learn run directly on
the same split, a leakage check, bad input, and the ``probe`` command on a store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

import interlace as il
from interlace.analyses import train_probes
from interlace.analyses.probes import split_examples
from interlace.cli import app
from interlace.datasets import arithmetic_statements

N = 200


def test_arithmetic_statements_are_seeded_and_half_correct() -> None:
    records = arithmetic_statements(N, seed=0)
    assert records == arithmetic_statements(N, seed=0)
    assert records != arithmetic_statements(N, seed=1)
    assert sum(r["label"] for r in records) == N // 2
    for r in records:
        assert r["label"] == (r["a"] + r["b"] == r["c"])
        assert 0 <= r["c"] <= 9 and r["text"].endswith(r["statement"])
        assert r["statement"] == f"{r['a']} + {r['b']} = {r['c']}"
    with pytest.raises(ValueError, match="at least 2"):
        arithmetic_statements(1)


@pytest.fixture(scope="module")
def arithmetic(smollm2: Any) -> xr.DataArray:
    """The last token's residual stream at every layer, labelled with correctness."""
    records = arithmetic_statements(N, seed=0)
    graph = il.Graph(capture=[il.Capture(site="resid_post", layers="all", positions="last")])
    captured = il.run(smollm2, graph, [r["text"] for r in records]).captured["resid_post"]
    return captured.assign_coords(correct=("example", [r["label"] for r in records]))


@pytest.mark.slow
def test_probes_find_correctness_above_chance(arithmetic: xr.DataArray) -> None:
    probes = train_probes(arithmetic, "correct", seed=0)
    acc, auroc = probes["accuracy"].values, probes["auroc"].values
    print("accuracy by layer:", np.round(acc, 2).tolist())
    print("AUROC by layer:", np.round(auroc, 2).tolist())
    assert probes.attrs["positive"] == "True" and (probes["chance"] == 0.5).all()
    best = int(acc.argmax())
    assert acc.max() >= 0.75 and auroc.max() >= 0.8
    assert acc.max() - acc[0] >= 0.15 and best >= 5  # it rises with depth
    assert probes["direction"].shape == (30, 576)
    assert (probes["split"] == "test").sum() == N // 4


@pytest.mark.slow
def test_probe_equals_scikit_learn_on_the_same_split(arithmetic: xr.DataArray) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probes = train_probes(arithmetic, "correct", layers=[12], seed=3, c=0.5)
    test = probes["split"].values == "test"
    x = arithmetic.sel(layer=12).values
    y = arithmetic["correct"].values
    pipe = make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=2000))
    pipe.fit(x[~test], y[~test])
    assert float(probes["accuracy"][0]) == pytest.approx(pipe.score(x[test], y[test]))
    expected_auc = roc_auc_score(y[test], pipe.decision_function(x[test]))
    assert float(probes["auroc"][0]) == pytest.approx(expected_auc)
    # the raw-space direction and bias reproduce scikit-learn's logits
    logit = x @ probes["direction"].values[0] + float(probes["bias"][0])
    np.testing.assert_allclose(logit, pipe.decision_function(x), rtol=1e-4, atol=1e-4)


def _synthetic(n: int = 40, positions: int = 5, seed: int = 0) -> xr.DataArray:
    """Random activations with a label written into feature 0 at every position."""
    rng = np.random.default_rng(seed)
    label = np.arange(n) % 2 == 0
    x = rng.normal(size=(n, 2, positions, 8)).astype(np.float32)
    x[..., 0] += 2.0 * label[:, None, None]
    token_index = np.broadcast_to(np.arange(positions), (n, positions))
    return xr.DataArray(
        x,
        dims=("example", "layer", "position", "d_model"),
        coords={
            "layer": [0, 1],
            "label": ("example", label),
            "token_index": (("example", "position"), token_index),
        },
    )


def test_no_test_example_can_reach_training() -> None:
    """The split is drawn by example before any activation is read, so every position of an
    example lands on its side, and replacing the test examples' activations leaves the trained
    probes exactly as they were."""
    data = _synthetic()
    probes = train_probes(data, "label", seed=1)
    side = probes["split"].values
    assert set(side) == {"train", "test"} and (side == "test").sum() == 10
    assert (split_examples(data["label"].values, (True, False), 0.25, 1) == side).all()
    test = np.nonzero(side == "test")[0]
    values = data.values.copy()
    values[test] = np.random.default_rng(9).normal(size=values[test].shape)
    again = train_probes(data.copy(data=values), "label", seed=1)
    assert (again["split"].values == side).all()
    np.testing.assert_array_equal(again["direction"].values, probes["direction"].values)
    np.testing.assert_array_equal(again["bias"].values, probes["bias"].values)
    assert (again["accuracy"] < probes["accuracy"]).all()  # the test set did change
    # position 0 is left out unless asked: 4 rows per example instead of 5
    with_zero = train_probes(data, "label", seed=1, exclude_position_zero=False)
    assert (with_zero["direction"] != probes["direction"]).any()


def test_probes_over_the_sites_of_a_dataset() -> None:
    data = _synthetic()
    ds = xr.Dataset({"resid_post": data, "mlp_out": data * 2})
    probes = train_probes(ds, "label", seed=0)
    assert list(probes["site"].values) == ["resid_post", "mlp_out"]
    assert probes["accuracy"].dims == ("site", "layer")
    np.testing.assert_allclose(
        probes["accuracy"].sel(site="resid_post"), probes["accuracy"].sel(site="mlp_out")
    )


def test_probes_refuse_bad_input() -> None:
    data = _synthetic()
    with pytest.raises(il.ValidationError, match="no coordinate 'missing'.*allowed: label"):
        train_probes(data, "missing")
    three = data.assign_coords(label=("example", np.arange(40) % 3))
    with pytest.raises(il.ValidationError, match="takes 3 values"):
        train_probes(three, "label")
    with pytest.raises(il.ValidationError, match="layer 7 is not in the data"):
        train_probes(data, "label", layers=[7])
    with pytest.raises(il.ValidationError, match="too few examples"):
        train_probes(data.isel(example=[0, 1, 2]), "label")
    # two of three values chosen: the third is left out of both sides
    probes = train_probes(three, "label", groups=(2, 0))
    assert set(probes["split"].values[np.arange(40) % 3 == 1]) == {""}


@pytest.mark.slow
def test_probe_command_reads_a_store(tiny_wrapped: Any, tmp_path: Path) -> None:
    model = tiny_wrapped("llama")
    records = arithmetic_statements(24, seed=2)
    store = tmp_path / "arith.zarr"
    il.cache(model, records, store, sites="resid_post", positions="all", progress=False)
    plot = tmp_path / "probes.png"
    args = ["probe", str(store), "--label", "label", "--json", "--plot", str(plot)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["n_test_examples"] == 6 and report["positive"] == "True"
    rows = report["sites"]["resid_post"]
    assert [r["layer"] for r in rows] == [0, 1] and all(0 <= r["auroc"] <= 1 for r in rows)
    assert plot.stat().st_size > 1000
    at_answer = CliRunner().invoke(app, [*args[:4], "--position", "-1", "--json"])
    assert at_answer.exit_code == 2 and "position -1 is not in" in at_answer.output
    last = int((il.open_store(store)["token_index"] >= 0).sum("position").min()) - 1
    one = CliRunner().invoke(app, [*args[:4], "--position", str(last), "--json"])
    assert one.exit_code == 0, one.output
    bad = CliRunner().invoke(app, ["probe", str(store), "--label", "nope"])
    assert bad.exit_code == 2 and "--label: no coordinate 'nope'" in bad.output
