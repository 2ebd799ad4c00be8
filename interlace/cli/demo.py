"""``interlace demo``: the README's main job, end to end on the bundled model.

A small study of arithmetic verification ("Is 3 + 4 = 8 correct? Answer Yes or No."): the
model as it is, with two attention heads ablated, with a few value vectors zeroed, and steered
toward "Yes" at four coefficients beside a random direction of the same length. It reads the
answer's log-probabilities, generates a short reply, follows the answer's confidence along
that reply, and captures the residual stream. Then it caches the residual stream of 96 worked
statements ("4 + 4 = 8\n3 + 5 = 7") and trains a linear probe per layer to tell correct
statements from wrong ones. Everything lands under ``./interlace-demo/``: the study file, the
stores, and a report with plots. Rerun, it resumes or reuses the stores.
"""

from __future__ import annotations

import time
from pathlib import Path

from interlace.cli.common import console

OUT = Path("interlace-demo")
STUDY = """\
# The demo study (interlace demo). Run it yourself: interlace study study.yaml
name: demo
model: {model}
dataset: {{task: arithmetic_verification, n: 16, seed: 0, options: {{chat: true}}}}
batch_size: 16
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
generate: {{max_new_tokens: 10}}
readouts:
  - {{kind: logits, name: answer, tokens: ["Yes", "No"], target: answer}}
  - {{kind: generation, name: reply, extract: yes_no, score: exact_match, target: answer}}
  - {{kind: fork_readout, at: {{every: 2}}, suffix: " The answer is", choices: [" Yes", " No"]}}
  - {{kind: capture, site: resid_post, layers: all, positions: last}}
out: results.zarr
"""


def run_demo(name: str, out: Path = OUT) -> None:
    """Run the demo study on ``name``, then its report and a probe, into ``out``:
    ``run_demo("smollm2-135m")``."""
    from interlace.analyses.plots import plot_probes
    from interlace.analyses.probes import train_probes
    from interlace.datasets import arithmetic_statements
    from interlace.jobs.cache import cache
    from interlace.models.loading import load
    from interlace.stores.reader import open_store
    from interlace.studies.execute import load_study, open_results, plan_for, run_study
    from interlace.studies.report import write_report

    printer = console()
    t0 = time.time()
    out.mkdir(parents=True, exist_ok=True)
    file = out / "study.yaml"
    file.write_text(STUDY.format(model=name), encoding="utf-8")
    study, base_dir = load_study(file)
    for line in plan_for(study, base_dir).describe():
        printer.print(line, highlight=False)
    model = load(name)
    printer.print(f"[bold]loaded[/bold] {model} in {time.time() - t0:.1f}s")
    report = run_study(file, model=model)
    printer.print(report.message(), highlight=False)

    results = open_results(report.path).load()
    logprob = results["answer_logprob"]
    log_odds = (logprob.sel(answer_token="Yes") - logprob.sel(answer_token="No")).mean("example")
    printer.print("mean log-odds of the answer 'Yes' over 'No' (next token), by condition:")
    for condition in study.conditions:
        row = log_odds.sel(condition=condition)
        if bool(results["swept"].sel(condition=condition)):
            shown = "  ".join(
                f"{c:+.2f}: {float(v):+.2f}"
                for c, v in zip(row.coeff.values, row.values, strict=True)
            )
        else:
            shown = f"{float(row.isel(coeff=0)):+.2f}"
        printer.print(f"  {condition:>20}  {shown}", highlight=False)

    statements = cache(
        model,
        arithmetic_statements(96, seed=1),
        out / "statements.zarr",
        sites="resid_post",
        layers="all",
        positions="last",
        batch_size=16,
    )
    printer.print(statements.message(), highlight=False)
    probes = train_probes(open_store(out / "statements.zarr"), label="label", seed=0)
    plot_probes(probes, out / "probe.png")
    accuracy = probes["accuracy"].sel(site="resid_post")
    layer = int(accuracy.idxmax("layer"))
    printer.print(
        f"probe of the residual (statement correct?): best layer {layer}, test accuracy "
        f"{float(accuracy.sel(layer=layer)):.2f} on {int((probes.split == 'test').sum())} "
        "held-out statements (chance 0.50)",
        highlight=False,
    )
    path = write_report(report.path, out)
    with path.open("a", encoding="utf-8") as md:
        md.write(
            "\n## Probe\n\nA logistic-regression probe per layer of the residual stream (last "
            "token) of 96 worked statements (`statements.zarr`, made with `il.cache`) for "
            "`label` (the statement is correct).\n\n![probe](probe.png)\n"
        )
    printer.print(f"report: {path}")
    printer.print(f"[green]demo done[/green] in {time.time() - t0:.1f}s")
