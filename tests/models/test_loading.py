"""Loading: the bundled model, its shape, load time, and clear errors for bad inputs."""

from __future__ import annotations

import json
import time

import pytest
import torch
from transformers import LlamaConfig
from typer.testing import CliRunner

import interlace as il
from interlace.cli import app
from interlace.models.adapters import UnsupportedArchitectureError
from interlace.models.errors import ModelLoadError

runner = CliRunner()


@pytest.fixture(scope="module")
def smol() -> il.Model:
    return il.load()


def test_info_json_gives_the_bundled_shape() -> None:
    result = runner.invoke(app, ["info", "smollm2-135m", "--json"])
    assert result.exit_code == 0, result.output
    facts = json.loads(result.output)
    assert facts["family"] == "llama"
    assert (facts["n_layers"], facts["d_model"], facts["n_heads"], facts["n_kv_heads"]) == (
        30, 576, 9, 3)
    assert (facts["head_dim"], facts["d_mlp"], facts["vocab"]) == (64, 1536, 49152)
    assert set(facts["sites"]) >= {"embed", "resid_pre", "head_z", "mlp_act", "k", "logits"}


def test_second_load_is_fast_and_answers(smol: il.Model) -> None:
    start = time.perf_counter()
    again = il.load("smollm2-135m")
    elapsed = time.perf_counter() - start
    assert elapsed < 2.0, f"second load took {elapsed:.2f}s"
    ids = again.tokenizer("The Eiffel Tower is in the city of", return_tensors="pt")
    with torch.inference_mode():
        logits = again.hf(**ids).logits[0, -1]
    assert again.tokenizer.decode(logits.argmax()) == " Paris"
    # bit-identical to the fixture's copy: the cache is the same conversion
    with torch.inference_mode():
        assert torch.equal(smol.hf(**ids).logits[0, -1], logits)


def test_models_lists_every_family() -> None:
    result = runner.invoke(app, ["models", "--json"])
    assert result.exit_code == 0
    families = {f["family"] for f in json.loads(result.output)["families"]}
    assert families >= {"llama", "mistral", "qwen2", "qwen3", "gemma2", "gpt2", "gpt_neox",
                        "phi3", "olmo2"}


def test_unknown_model_name_is_a_clear_error() -> None:
    with pytest.raises(ModelLoadError, match=r"unknown model 'no-such-model'.*smollm2-135m"):
        il.load("no-such-model")
    result = runner.invoke(app, ["info", "no-such-model"])
    assert result.exit_code == 2 and "unknown model 'no-such-model'" in result.output


def test_directory_without_config_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(ModelLoadError, match="has no config.json"):
        il.load(str(tmp_path))


def test_unsupported_architecture_names_it_and_the_supported(tmp_path) -> None:
    from transformers import BertConfig

    BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
               intermediate_size=37).save_pretrained(tmp_path)
    with pytest.raises(UnsupportedArchitectureError, match=r"'bert'.*gpt2.*llama"):
        il.load(str(tmp_path))


def test_corrupt_gguf_is_a_clear_error(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("INTERLACE_CACHE", str(tmp_path / "cache"))
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\x00" * 64)
    with pytest.raises(ModelLoadError, match="could not read GGUF file .*broken.gguf"):
        il.load(str(bad))
    # nothing half-written is left that a later load could mistake for a conversion
    assert list((tmp_path / "cache").glob("models/*")) == []


def test_missing_gguf_file_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(ModelLoadError, match="GGUF file not found"):
        il.load(str(tmp_path / "missing.gguf"))


def test_local_directory_loads(tmp_path, smol: il.Model) -> None:
    """A transformers checkpoint directory loads through the same path as the hub."""
    config = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, vocab_size=49152)
    from transformers import LlamaForCausalLM

    LlamaForCausalLM(config).save_pretrained(tmp_path)
    smol.tokenizer.save_pretrained(tmp_path)
    m = il.load(str(tmp_path))
    assert (m.shape.n_layers, m.shape.d_model, m.shape.n_kv_heads) == (2, 64, 2)
