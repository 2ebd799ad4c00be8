"""``interlace report RESULTS.zarr``: a markdown summary of a study's results and PNG plots.

For each per-example score of the study (``*_correct``, ``*_score``, ``*_target_logprob``) the
report tabulates its mean over examples for every condition and sweep point, and plots it
against the first sweep axis: one line per swept condition (and per value of any other axis),
the unswept conditions (the baseline, the ablations) as horizontal lines beside them, so a
steering direction is read against its random-vector condition and the unsteered model. For
each fork readout it plots the mean log-odds along the checkpoints of the generation.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from interlace.studies.execute import open_results

SCORE_SUFFIXES = ("_correct", "_score", "_target_logprob")
MAX_CURVES = 12


def scores(ds: xr.Dataset) -> list[str]:
    """The per-example score variables of a results Dataset, in a stable order."""
    prefix = {"condition", *ds.attrs.get("sweep_dims", []), "example"}
    return sorted(
        str(n)
        for n, v in ds.data_vars.items()
        if str(n).endswith(SCORE_SUFFIXES) and set(v.dims) == prefix
    )


def _label(ds: xr.Dataset, where: dict[str, Any]) -> str:
    return ", ".join(f"{k}={_show(v)}" for k, v in where.items())


def _show(value: Any) -> str:
    return f"{value:g}" if isinstance(value, (float, np.floating)) else str(value)


def _other_points(ds: xr.Dataset, dims: list[str]) -> list[dict[str, Any]]:
    """Every combination of the labels along ``dims`` (one empty one without dims)."""
    values = [ds[d].values.tolist() for d in dims]
    return [dict(zip(dims, combo, strict=True)) for combo in itertools.product(*values)]


def _finish(fig: Figure, ax: Any, path: str | os.PathLike | None) -> Figure:
    """Legend and grid; written as PNG to ``path`` when one is given."""
    ax.legend(fontsize=7, loc="best")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, format="png", dpi=100)
    return fig


def plot_score(ds: xr.Dataset, name: str, path: str | os.PathLike | None = None) -> Figure:
    """Mean ``name`` over examples against the first sweep axis, per condition (see the
    module docstring)."""
    mean = ds[name].mean("example")
    sweep = list(ds.attrs.get("sweep_dims", []))
    fig = Figure(figsize=(7, 4.2))
    ax = fig.add_subplot()
    x_dim = sweep[0] if sweep else None
    x = ds[x_dim].values if x_dim else np.array([0])
    curves = 0
    for i, condition in enumerate(ds["condition"].values.tolist()):
        row = mean.sel(condition=condition)
        if not bool(ds["swept"].values[i]):
            flat = float(row.isel({d: 0 for d in sweep}).values) if sweep else float(row.values)
            ax.axhline(flat, linestyle="--", color=f"C{i}", label=f"{condition}")
            continue
        if x_dim == "point":  # a zip: the points in order
            ax.plot(x, row.values, marker="o", color=f"C{i}", label=condition)
            continue
        for where in _other_points(ds, sweep[1:]):
            if curves >= MAX_CURVES:
                break
            curves += 1
            label = f"{condition} {_label(ds, where)}".strip()
            style = ["-", ":", "-.", (0, (5, 1))][
                list(_other_points(ds, sweep[1:])).index(where) % 4
            ]
            ax.plot(
                x, row.sel(where).values, marker="o", linestyle=style, color=f"C{i}", label=label
            )
    ax.set_xlabel(x_dim or "")
    ax.set_ylabel(f"mean {name}")
    ax.set_title(f"{name} by condition")
    return _finish(fig, ax, path)


def fork_readouts(ds: xr.Dataset) -> list[str]:
    """The keys of the fork readouts in a results Dataset."""
    return sorted(str(n)[: -len("_log_odds")] for n in ds.data_vars if str(n).endswith("_log_odds"))


def plot_confidence(ds: xr.Dataset, key: str, path: str | os.PathLike | None = None) -> Figure:
    """Mean log-odds (first choice over second) along the generation's checkpoints, one line
    per condition at each sweep point (up to :data:`MAX_CURVES`)."""
    log_odds = ds[f"{key}_log_odds"].mean("example")
    sweep = list(ds.attrs.get("sweep_dims", []))
    fig = Figure(figsize=(7, 4.2))
    ax = fig.add_subplot()
    cp = ds[f"{key}_checkpoint"].values
    curves = 0
    for i, condition in enumerate(ds["condition"].values.tolist()):
        swept = bool(ds["swept"].values[i])
        points = _other_points(ds, sweep) if swept else [{d: ds[d].values[0] for d in sweep}]
        for where in points:
            if curves >= MAX_CURVES:
                break
            curves += 1
            values = log_odds.sel(condition=condition, **where).values
            label = f"{condition} {_label(ds, where) if swept else ''}".strip()
            ax.plot(cp, values, marker=".", color=f"C{i}", alpha=0.9, label=label)
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set_xlabel("checkpoint (along the generation)")
    ax.set_ylabel("mean log-odds")
    ax.set_title(f"{key}: answer confidence along the generation")
    return _finish(fig, ax, path)


def _table(ds: xr.Dataset, name: str) -> list[str]:
    """A markdown table of mean ``name``: conditions by sweep points."""
    mean = ds[name].mean("example")
    sweep = list(ds.attrs.get("sweep_dims", []))
    points = _other_points(ds, sweep)
    header = ["condition", *(_label(ds, p) or "value" for p in points)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for i, condition in enumerate(ds["condition"].values.tolist()):
        swept = bool(ds["swept"].values[i])
        cells = []
        for j, where in enumerate(points):
            if swept or j == 0:
                cells.append(f"{float(mean.sel(condition=condition, **where).values):.3f}")
            else:
                cells.append("″")  # unswept: the same value at every point
        lines.append(f"| {condition} | " + " | ".join(cells) + " |")
    return lines


def write_report(results: str | os.PathLike, out_dir: str | os.PathLike | None = None) -> Path:
    """Write ``report.md`` and its PNG plots for the study in ``results`` into ``out_dir``
    (default: beside the store, ``<store>-report``); returns the markdown file's path."""
    ds = open_results(results).load()
    out = Path(out_dir) if out_dir is not None else Path(f"{str(results).rstrip('/')}-report")
    out.mkdir(parents=True, exist_ok=True)
    study = ds.attrs.get("study", {})
    sweep = study.get("sweep")
    lines = [
        f"# Study report: {study.get('name') or Path(str(results)).name}",
        "",
        f"- model: `{ds.attrs.get('model')}` ({ds.attrs.get('adapter_family')}), backend "
        f"`{ds.attrs.get('backend')}`",
        f"- dataset: {ds.sizes['example']} examples ({_dataset(study)})",
        f"- conditions: {', '.join(f'`{c}`' for c in ds['condition'].values.tolist())}",
    ]
    if sweep:
        axes = "; ".join(f"`{n}` = {a['values']}" for n, a in sweep["axes"].items())
        lines.append(f"- sweep ({sweep['mode']}) of {', '.join(sweep['conditions'])}: {axes}")
    lines.append(f"- results: `{results}` (open with `interlace.studies.open_results`)")
    for name in scores(ds):
        png = f"{name}.png"
        plot_score(ds, name, out / png)
        lines += ["", f"## {name}", "", f"Mean over {ds.sizes['example']} examples.", ""]
        lines += _table(ds, name)
        lines += ["", f"![{name}]({png})"]
    for key in fork_readouts(ds):
        png = f"{key}_curve.png"
        plot_confidence(ds, key, out / png)
        lines += ["", f"## {key}", "", "Mean log-odds of the first choice over the second.", ""]
        lines += [f"![{key}]({png})"]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _dataset(study: dict[str, Any]) -> str:
    d = study.get("dataset", {})
    return f"task `{d['task']}`, seed {d.get('seed', 0)}" if "task" in d else f"`{d.get('path')}`"
