"""Every analysis's plot renders to a PNG that opens, has the expected size and is not blank.
Inputs come from tiny random models and synthetic data: the plots, not the numbers, are under
test here."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.image import imread

import interlace as il
from interlace.analyses import (
    compare_lenses,
    compare_weights,
    direction_scores,
    logit_lens,
    plots,
    project,
    steering_effect,
    train_probes,
    train_tuned_lens,
)
from interlace.models.model import Model


def assert_png(path: Path, min_width: int = 200) -> None:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = imread(path)
    assert image.ndim == 3 and image.shape[2] in (3, 4)
    assert image.shape[1] >= min_width and image.shape[0] >= 150
    assert image[..., :3].std() > 0.02  # something is drawn


@pytest.fixture(scope="module")
def tiny(tiny_wrapped: Any) -> Any:
    return tiny_wrapped("llama")


@pytest.fixture(scope="module")
def resid(tiny: Any) -> xr.DataArray:
    graph = il.Graph(capture=[il.Capture(site="resid_post", layers="all", positions="all")])
    return il.run(tiny, graph, [[5, 6, 7, 8, 9], [10, 11, 12]]).captured["resid_post"]


def test_lens_plot(tiny: Any, tmp_path: Path) -> None:
    lens = logit_lens(tiny, [[5, 6, 7, 8, 9]], targets=[7])
    fig = plots.plot_lens(lens, path=tmp_path / "lens.png")
    assert isinstance(fig, Figure)
    assert_png(tmp_path / "lens.png")
    plots.plot_lens(lens.isel(position=-1), path=tmp_path / "last.png")  # one position
    assert_png(tmp_path / "last.png", min_width=100)


def test_tuned_lens_kl_plot(tiny: Any, resid: xr.DataArray, tmp_path: Path) -> None:
    lens = train_tuned_lens(tiny, resid, steps=2, batch_size=4)
    plots.plot_lens_kl(compare_lenses(tiny, resid, lens), path=tmp_path / "kl.png")
    assert_png(tmp_path / "kl.png")


@pytest.mark.slow
def test_probe_plot(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    label = np.arange(40) % 2 == 0
    x = rng.normal(size=(40, 3, 8)) + label[:, None, None]
    data = xr.DataArray(x, dims=("example", "layer", "d_model"), coords={"layer": [0, 1, 2]})
    data = data.assign_coords(label=("example", label))
    plots.plot_probes(train_probes(data, "label"), path=tmp_path / "probes.png")
    assert_png(tmp_path / "probes.png")
    both = train_probes(xr.Dataset({"a": data, "b": -data}), "label")
    plots.plot_probes(both, path=tmp_path / "sites.png")
    assert_png(tmp_path / "sites.png")


def test_projection_plot(tiny: Any, tmp_path: Path) -> None:
    proj = project(tiny, tiny.weight("W_U")[100], k=8)
    plots.plot_projection(proj, path=tmp_path / "vocab.png", title="token 100")
    assert_png(tmp_path / "vocab.png")


def test_steering_plot(tiny: Any, tmp_path: Path) -> None:
    effect = steering_effect(tiny, np.ones(64), 1, [[5, 6, 7]], [9, 10], n_random=4, coeff=3.0)
    plots.plot_steering(effect, path=tmp_path / "steer.png")
    assert_png(tmp_path / "steer.png")


def test_head_and_comparison_plots(tiny: Any, tmp_path: Path) -> None:
    plots.plot_head_scores(direction_scores(tiny, np.ones(64)), path=tmp_path / "heads.png")
    assert_png(tmp_path / "heads.png", min_width=150)
    other = Model.wrap(copy.deepcopy(tiny.hf), tiny.tokenizer, name="scaled")
    with torch.no_grad():
        other.hf.model.layers[1].mlp.down_proj.weight.mul_(-1.0)
    comparison = compare_weights(tiny, other)
    plots.plot_comparison(comparison, path=tmp_path / "compare.png")
    assert_png(tmp_path / "compare.png")


def test_confidence_plot(tmp_path: Path) -> None:
    """The curve of a fork readout (synthetic: the plot is under test), with two choices and
    with one (then the log-probability is drawn)."""
    t = np.arange(4, 44, 4)
    logprob = np.stack([np.linspace(-3, -0.2, len(t)), np.linspace(-0.5, -4, len(t))], -1)
    mass = np.exp(logprob).sum(-1)
    readout = xr.Dataset(
        {
            "logprob": (("checkpoint", "choice"), logprob),
            "log_odds": ("checkpoint", logprob[:, 0] - logprob[:, 1]),
            "mass": ("checkpoint", mass),
            "low_mass": ("checkpoint", mass < 0.3),
        },
        coords={"token_index": ("checkpoint", t), "choice": [" Yes", " No"]},
        attrs={"suffix": " The final answer is"},
    )
    figure = plots.plot_confidence(readout, tmp_path / "curve.png", title="Is 91 prime?")
    assert isinstance(figure, Figure) and len(figure.axes) == 2  # log-odds and mass axes
    assert_png(tmp_path / "curve.png", min_width=400)
    plots.plot_confidence(readout.isel(choice=[0]), path=tmp_path / "one.png")
    assert_png(tmp_path / "one.png", min_width=400)
