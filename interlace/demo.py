"""``interlace demo``: the README's main job, end to end on the bundled model.

A small study of arithmetic verification ("Is 3 + 4 = 8 correct? Answer Yes or No."): the
model as it is, with two attention heads ablated, with a few value vectors zeroed, and steered
toward "Yes" at four coefficients beside a random direction of the same length. It reads the
answer's log-probabilities, generates a short reply, follows the answer's confidence along
that reply, and captures the residual stream, on which a linear probe per layer is trained to
tell correct statements from wrong ones. Everything lands under ``./interlace-demo/``: the
study file, the results store, and a report with plots. Rerun, it resumes or reuses the store.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

OUT = Path("interlace-demo")
STUDY = """\
# The demo study (interlace demo). Run it yourself: interlace study study.yaml
name: demo
model: {model}
dataset: {{task: arithmetic_verification, n: 24, seed: 0, options: {{chat: true}}}}
batch_size: 12
vectors:
  toward_yes: {{unembed: "Yes"}}
  random: {{random: 0, like: toward_yes}}
conditions:
  baseline: {{}}
  ablate_heads:
    interventions: [{{kind: ablate_heads, layer: 20, heads: [0, 3]}}]
  zero_value_vectors:
    interventions: [{{kind: zero_value_vectors, layer: 25, indices: [0, 1, 2, 3]}}]
  steer:
    interventions:
      - {{kind: add_vector, site: resid_post, layers: [20], vector: toward_yes,
         normalize: resid_norm, coeff: 1.0}}
  steer_random:
    extends: steer
    set: {{"interventions[0].vector": random}}
sweep:
  conditions: [steer, steer_random]
  axes:
    coeff: {{field: "interventions[0].coeff", values: [-0.5, -0.25, 0.25, 0.5]}}
generate: {{max_new_tokens: 12}}
readouts:
  - {{kind: logits, name: answer, tokens: ["Yes", "No"], target: answer}}
  - {{kind: generation, name: reply, extract: yes_no, score: exact_match, target: answer}}
  - {{kind: fork_readout, at: {{every: 2}}, suffix: " The answer is", choices: [" Yes", " No"]}}
  - {{kind: capture, site: resid_post, layers: all, positions: last}}
out: results.zarr
"""


def run_demo(name: str, console: Any, out: Path = OUT) -> None:
    """Run the demo study on ``name``, then its report and a probe, into ``out``."""
    import interlace as il
    from interlace.analyses.plots import plot_probes
    from interlace.studies.execute import load_study, open_results, plan_for, run_study
    from interlace.studies.report import write_report

    t0 = time.time()
    out.mkdir(parents=True, exist_ok=True)
    file = out / "study.yaml"
    file.write_text(STUDY.format(model=name), encoding="utf-8")
    study, base_dir = load_study(file)
    for line in plan_for(study, base_dir).describe():
        console.print(line, highlight=False)
    model = il.load(name)
    console.print(f"[bold]loaded[/bold] {model} in {time.time() - t0:.1f}s")
    report = run_study(file, model=model)
    console.print(report.message(), highlight=False)

    results = open_results(report.path).load()
    accuracy = results["answer_correct"].mean("example")
    console.print("answer accuracy (next token, Yes vs No) by condition:")
    for condition in study.conditions:
        row = accuracy.sel(condition=condition)
        pairs = zip(row.coeff.values, row.values, strict=True)
        values = "  ".join(f"{c:+.2f}: {float(v):.2f}" for c, v in pairs)
        swept = bool(results["swept"].sel(condition=condition))
        shown = values if swept else f"{float(row.isel(coeff=0)):.2f}"
        console.print(f"  {condition:>20}  {shown}", highlight=False)

    baseline = results.sel(condition="baseline").isel(coeff=0)
    probes = il.train_probes(baseline["resid_post"], label="label", seed=0)
    plot_probes(probes, out / "probe.png")
    best = int(probes["auroc"].values.argmax())
    layer = int(probes["layer"][best])
    console.print(
        f"probe of the residual (statement correct?): best layer {layer}, "
        f"test AUROC {float(probes['auroc'][best]):.2f} on {int((probes.split == 'test').sum())} "
        "held-out examples",
        highlight=False,
    )
    path = write_report(report.path, out)
    with path.open("a", encoding="utf-8") as md:
        md.write(
            "\n## Probe\n\nA logistic-regression probe per layer of the baseline's residual "
            "stream (last token) for `label` (the statement is correct).\n\n![probe](probe.png)\n"
        )
    console.print(f"report: {path}")
    console.print(f"[green]demo done[/green] in {time.time() - t0:.1f}s")
