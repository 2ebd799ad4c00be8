"""``interlace.confidence``: answer confidence along a chain of thought, for a given response
or one the graph generates (the fork readouts of :mod:`interlace.runtime.fork`)."""

from __future__ import annotations

import xarray as xr

from interlace.interventions import ForkReadout, Graph
from interlace.models.model import Model
from interlace.runtime.backend import Backend, as_backend
from interlace.runtime.fork import check_readout_interventions, fork_readout, plan_fork, tokens_of
from interlace.runtime.prompts import ChatPrompt, Prompt, encode
from interlace.runtime.references import check_references, run_references
from interlace.runtime.run import run


def confidence(
    model: Model,
    prompt: Prompt,
    readout: ForkReadout,
    response: str | list[int] | None = None,
    graph: Graph | None = None,
    backend: str | Backend = "local",
    host: str | None = None,
) -> xr.Dataset:
    """Answer confidence along ``response`` to ``prompt``.

    A string prompt is wrapped in the chat template (``ChatPrompt(user=prompt)``); the response
    is the assistant's text (tokenized on its own, or given as ids). Without a response,
    ``graph`` must generate one: its interventions then apply as ``readout.steer`` says.
    ``backend``/``host`` say where it runs (see :func:`interlace.run`).
    """
    backend = as_backend(backend, host)
    graph = graph or Graph()
    if isinstance(prompt, str):
        prompt = ChatPrompt(user=prompt)
    if response is None:
        if graph.generate is None:
            raise ValueError("give a response, or a graph that generates one")
        out = run(model, graph.model_copy(update={"readouts": [readout]}), [prompt], backend)
        return out.readouts[0][readout.key]
    prompt_ids = encode(model.tokenizer, [prompt]).input_ids[0].tolist()
    response_ids = (
        tokens_of(model.tokenizer, response) if isinstance(response, str) else list(response)
    )
    fp = plan_fork(model.tokenizer, readout, prompt_ids, response_ids, "readout")
    steering = graph.interventions if readout.steer != "generation" else []
    if steering:
        check_readout_interventions(graph)
    graph.validate(model.shape, prompt_lengths=[len(prompt_ids)])
    steering_graph = Graph(interventions=steering)
    check_references(model, steering_graph, None)
    refs = run_references(model, steering_graph, None, backend)
    return fork_readout(model, readout, fp, list(steering), refs, backend)
