"""``interlace demo``: a short tour on the bundled model (load, ask, steer, ablate, capture)."""

from __future__ import annotations

import time
from typing import Any

PROMPT = "The Eiffel Tower is in the city of"


def _logprobs(model: Any, result: Any, words: list[str]) -> dict[str, float]:
    lp = result.logprobs().values[0]
    return {
        w: float(lp[model.tokenizer(w, add_special_tokens=False)["input_ids"][0]]) for w in words
    }


def run_demo(name: str, console: Any) -> None:
    import interlace as il

    t0 = time.time()
    model = il.load(name)
    console.print(f"[bold]loaded[/bold] {model} in {time.time() - t0:.1f}s")

    chat = il.run(
        model,
        il.Graph(generate=il.Generate(max_new_tokens=12)),
        [il.ChatPrompt(user="What is the capital of France?")],
    )
    console.print(f"chat answer: {chat.generated_text[0]!r}", highlight=False)

    words = [" Paris", " London"]
    clean = il.run(model, il.Graph(), [PROMPT])
    console.print(f"{PROMPT!r} -> {_logprobs(model, clean, words)}", highlight=False)

    # Steer toward ' London' with its own unembedding row, scaled to the residual's norm.
    london = model.weight("W_U")[model.tokenizer(" London")["input_ids"][0]]
    steer = il.AddVector(
        site="resid_post",
        layers=[20],
        vector=london.tolist(),
        coeff=0.5,
        normalize="resid_norm",
        positions="last",
    )
    steered = il.run(model, il.Graph(interventions=[steer]), [PROMPT])
    console.print(
        f"steered toward ' London' at layer 20: {_logprobs(model, steered, words)}", highlight=False
    )

    # Ablate every head of the last quarter of layers and watch ' Paris' fall.
    n = model.shape.n_layers
    ablate = [
        il.AblateHeads(layer=layer, heads=list(range(model.shape.n_heads)))
        for layer in range(3 * n // 4, n)
    ]
    ablated = il.run(model, il.Graph(interventions=ablate), [PROMPT])
    console.print(
        f"all heads of layers {3 * n // 4}-{n - 1} zeroed: {_logprobs(model, ablated, words)}",
        highlight=False,
    )

    captured = il.run(
        model, il.Graph(capture=[il.Capture(site="resid_post", layers="all")]), [PROMPT]
    ).captured["resid_post"]
    norms = [f"{float(v):.0f}" for v in ((captured[0] ** 2).sum("d_model") ** 0.5).values]
    console.print(f"residual norm at the last token, by layer: {' '.join(norms)}")
    console.print(f"[green]demo done[/green] in {time.time() - t0:.1f}s")
