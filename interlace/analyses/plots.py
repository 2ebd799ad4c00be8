"""One plot per analysis, drawn on a plain matplotlib ``Figure`` (no pyplot, no global state,
no display needed). Each function returns the figure and, given ``path``, writes it as PNG.
"""

from __future__ import annotations

import os

import numpy as np
import xarray as xr
from matplotlib.figure import Figure


def _finish(
    fig: Figure, path: str | os.PathLike | None, rect: tuple[float, ...] = (0, 0, 1, 1)
) -> Figure:
    fig.tight_layout(rect=rect)
    if path is not None:
        fig.savefig(path, format="png", dpi=100)
    return fig


def plot_lens(
    lens: xr.Dataset,
    example: int = 0,
    target: str | None = None,
    path: str | os.PathLike | None = None,
) -> Figure:
    """Layer x position heatmap of one example, each cell annotated with the top-1 token.

    Colour: the log-probability of ``target`` (default: the first target, if any), else of the
    top-1 token."""
    ds = lens.isel(example=example)
    pos = next((d for d in ds["top_id"].dims if d not in ("layer", "k")), None)
    if pos is None:  # one position per example
        ds = ds.expand_dims(position=[0])
        pos = "position"
    ds = ds.transpose("layer", pos, ...)
    if target is None and ds.sizes.get("target", 0):
        target = str(ds["target"].values[0])
    if target is not None:
        value, what = ds["target_logprob"].sel(target=target).values, f"log p({target!r})"
    else:
        value, what = ds["top_logprob"].isel(k=0).values, "log p(top-1)"
    words = ds["top_token"].isel(k=0).values
    n_layers, n_pos = value.shape
    fig = Figure(figsize=(max(4.0, 1.5 + 0.9 * n_pos), max(3.0, 1.2 + 0.28 * n_layers)))
    ax = fig.subplots()
    image = ax.imshow(value, aspect="auto", origin="lower", cmap="viridis")
    for i in range(n_layers):
        for j in range(n_pos):
            word = repr(str(words[i, j]))[1:-1][:8]
            ax.text(j, i, word, ha="center", va="center", fontsize=6, color="white")
    ax.set_yticks(range(n_layers), [str(v) for v in ds["layer"].values], fontsize=6)
    if "input_token" in ds.coords:
        labels = [repr(str(t))[1:-1] for t in np.atleast_1d(ds["input_token"].values)]
    else:
        labels = [str(v) for v in ds[pos].values]
    ax.set_xticks(range(n_pos), labels, rotation=60, fontsize=7)
    ax.set_xlabel("position")
    ax.set_ylabel("layer")
    ax.set_title(f"{lens.attrs.get('lens', 'logit')} lens: top-1 token, colour {what}", fontsize=9)
    fig.colorbar(image, ax=ax, label=what)
    return _finish(fig, path)


def plot_lens_kl(comparison: xr.Dataset, path: str | os.PathLike | None = None) -> Figure:
    """KL(final || lens) per layer of the logit lens and the tuned lens."""
    fig = Figure(figsize=(6, 3.5))
    ax = fig.subplots()
    for name in ("logit_lens", "tuned_lens"):
        ax.plot(comparison["layer"], comparison[name], marker="o", label=name.replace("_", " "))
    ax.set_yscale("log")
    ax.set_xlabel("layer")
    ax.set_ylabel("KL(final || lens), nats")
    ax.legend()
    return _finish(fig, path)


def plot_probes(probes: xr.Dataset, path: str | os.PathLike | None = None) -> Figure:
    """Test accuracy and AUROC per layer (one line per site), with the chance level."""
    fig = Figure(figsize=(7, 3.5))
    axes = fig.subplots(1, 2, sharey=True)
    sites = probes["site"].values if "site" in probes.dims else [None]
    chance = probes["chance"].max("site") if "site" in probes.dims else probes["chance"]
    for ax, metric in zip(axes, ("accuracy", "auroc"), strict=True):
        for site in sites:
            ds = probes if site is None else probes.sel(site=site)
            ax.plot(ds["layer"], ds[metric], marker="o", label=str(site or metric))
        if metric == "accuracy":
            ax.plot(probes["layer"], chance, "k--", label="chance (majority)")
        else:
            ax.axhline(0.5, color="k", ls="--", label="chance")
        ax.set_xlabel("layer")
        ax.set_title(metric)
        ax.legend(fontsize=7)
    axes[0].set_ylim(0.3, 1.02)
    fig.suptitle(f"probes for {probes.attrs.get('label')} = {probes.attrs.get('positive')}")
    return _finish(fig, path)


def plot_projection(
    projection: xr.Dataset, path: str | os.PathLike | None = None, title: str = ""
) -> Figure:
    """Top and bottom tokens of one direction (the first, if the projection holds several)."""
    ds = projection.isel({d: 0 for d in projection["score"].dims if d not in ("side", "rank")})
    fig = Figure(figsize=(7, 0.5 + 0.3 * ds.sizes["rank"]))
    axes = fig.subplots(1, 2)
    for ax, side, colour in zip(axes, ("top", "bottom"), ("tab:green", "tab:red"), strict=True):
        s = ds.sel(side=side)
        ax.barh(range(s.sizes["rank"]), s["score"].values, color=colour)
        ax.set_yticks(range(s.sizes["rank"]), [repr(str(t)) for t in s["token"].values])
        ax.invert_yaxis()
        ax.set_title(f"{side} ({projection.attrs.get('score', '')})")
    fig.suptitle(title)
    return _finish(fig, path)


def plot_steering(effect: xr.Dataset, path: str | os.PathLike | None = None) -> Figure:
    """Mean change of the targets' log-probabilities: the vector against random directions."""
    mean = effect["delta"].mean(("example", "target"))
    is_random = np.char.startswith(mean["condition"].values.astype(str), "random")
    fig = Figure(figsize=(5, 3.5))
    ax = fig.subplots()
    ax.bar([0], mean.values[~is_random], color="tab:blue", label="vector")
    randoms = mean.values[is_random]
    ax.scatter(np.ones(len(randoms)), randoms, color="grey", label="random, matched norm")
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks([0, 1], ["vector", "random"])
    ax.set_ylabel("mean change of target log p")
    ax.set_title(
        f"steering at layer {effect.attrs.get('layer')}, coeff {effect.attrs.get('coeff')}"
    )
    ax.legend(fontsize=7)
    return _finish(fig, path)


def plot_head_scores(scores: xr.DataArray, path: str | os.PathLike | None = None) -> Figure:
    """Heatmap of head scores, layer x head."""
    height = max(3.0, 1.0 + 0.2 * scores.sizes["layer"])
    fig = Figure(figsize=(max(3.5, 1.5 + 0.4 * scores.sizes["head"]), height))
    ax = fig.subplots()
    image = ax.imshow(scores.transpose("layer", "head").values, aspect="auto", origin="lower")
    ax.set_yticks(
        range(scores.sizes["layer"]), [str(v) for v in scores["layer"].values], fontsize=6
    )
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    ax.set_title(f"OV write scores ({scores.attrs.get('scores', '')})")
    fig.colorbar(image, ax=ax)
    return _finish(fig, path)


def plot_comparison(comparison: xr.Dataset, path: str | os.PathLike | None = None) -> Figure:
    """Heatmap of the per-layer matrices' cosines, weight x layer (global matrices in the title)."""
    layered = comparison["layer"].values >= 0
    per_layer = comparison.isel(matrix=np.nonzero(layered)[0])
    weights = list(dict.fromkeys(per_layer["weight"].values.tolist()))
    layers = sorted(set(per_layer["layer"].values.tolist()))
    grid = np.full((len(weights), len(layers)), np.nan)
    for m in range(per_layer.sizes["matrix"]):
        row = weights.index(per_layer["weight"].values[m])
        grid[row, layers.index(per_layer["layer"].values[m])] = per_layer["cosine"].values[m]
    fig = Figure(figsize=(max(5.0, 1.5 + 0.25 * len(layers)), 1.2 + 0.35 * len(weights)))
    ax = fig.subplots()
    image = ax.imshow(grid, aspect="auto", cmap="magma", vmax=1.0)
    ax.set_yticks(range(len(weights)), weights)
    ax.set_xticks(range(len(layers)), [str(v) for v in layers], fontsize=6)
    ax.set_xlabel("layer")
    whole = comparison.isel(matrix=np.nonzero(~layered)[0])
    glob = ", ".join(
        f"{m}: {c:.4f}" for m, c in zip(whole["matrix"].values, whole["cosine"].values, strict=True)
    )
    ax.set_title(
        f"cosine, {comparison.attrs.get('a')} vs {comparison.attrs.get('b')}; {glob}", fontsize=8
    )
    fig.colorbar(image, ax=ax)
    return _finish(fig, path)


def plot_confidence(
    readout: xr.Dataset, path: str | os.PathLike | None = None, title: str = ""
) -> Figure:
    """Answer confidence along a response (a readout of :func:`interlace.confidence`): the
    log-odds of the first two choices (the log-probability of a single choice) per checkpoint,
    and the probability mass on the choices on a second axis, low-mass checkpoints marked.

    ``plot_confidence(il.confidence(model, prompt, readout, response), "curve.png")``"""
    t = readout["token_index"].values
    choices = [str(c) for c in readout["choice"].values]
    if len(choices) > 1:
        what, y = f"log-odds {choices[0]!r} vs {choices[1]!r}", readout["log_odds"].values
    else:
        what, y = "log-prob", readout["logprob"].values[:, 0]
    fig = Figure(figsize=(8, 4))
    ax = fig.subplots()
    ax.plot(t, y, marker="o", color="tab:blue", label=what)
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xlabel("response tokens before the suffix")
    ax.set_ylabel(what, color="tab:blue")
    mass = readout["mass"].values
    low = readout["low_mass"].values
    mass_ax = ax.twinx()
    mass_ax.plot(t, mass, color="tab:orange", ls="--", label="mass on choices")
    mass_ax.scatter(t[low], mass[low], color="red", zorder=3, label="low mass")
    mass_ax.set_ylabel("probability mass on the choices", color="tab:orange")
    mass_ax.set_ylim(0, 1.05)
    ax.set_title(title or f"suffix {readout.attrs['suffix']!r}")
    ax.xaxis.get_major_locator().set_params(integer=True)
    fig.legend(loc="lower center", ncol=3, fontsize=8, frameon=False)
    return _finish(fig, path, rect=(0, 0.06, 1, 1))
