"""Named offline models: joining the slices under a pinned hash, names with typos, the memory
check before loading, and the tokenizer honouring the GGUF's BOS (Gemma answers wrongly without
it). The real models are installed by the test set-up (``tools/dev.sh``)."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path
from typing import Any

import pytest

import interlace as il
from interlace.models import catalog, memory
from interlace.models.errors import ModelLoadError
from interlace.models.gguf import honour_special_tokens

GEMMA, QWEN = "gemma-3-270m", "qwen2.5-coder-0.5b-instruct"


def fake_wheels(tmp_path: Path, slices: list[bytes]) -> list[Path]:
    """Part wheels as the PyPI packages lay them out: one slice under ``<module>/data/``."""
    wheels = []
    for i, data in enumerate(slices, 1):
        path = tmp_path / f"fake_part{i}-1.0-py3-none-any.whl"
        with zipfile.ZipFile(path, "w") as wheel:
            wheel.writestr(f"fake_part{i}/__init__.py", "")
            wheel.writestr(f"fake_part{i}/data/model.gguf.part{i:02d}", data)
        wheels.append(path)
    return wheels


def pinned(slices: list[bytes]) -> catalog.NamedModel:
    whole = b"".join(slices)
    return catalog.NamedModel(
        name="fake",
        about="a fake model",
        packages=tuple(f"fake-part{i}==1.0" for i in range(1, len(slices) + 1)),
        sha256=hashlib.sha256(whole).hexdigest(),
        size=len(whole),
    )


SLICES = [b"GGUF" + bytes(range(256)) * 40, bytes(range(255, -1, -1)) * 33, b"tail"]


def test_slices_join_in_order_under_the_pinned_hash(tmp_path: Path) -> None:
    wheels = fake_wheels(tmp_path, SLICES)
    seen: list[tuple[str, int, int]] = []
    out = catalog.join_slices(
        wheels, tmp_path / "m.gguf", pinned(SLICES), lambda *a: seen.append(a)
    )
    assert out.read_bytes() == b"".join(SLICES)
    assert seen[-1] == ("join", len(b"".join(SLICES)), len(b"".join(SLICES)))


@pytest.mark.parametrize("damage", ["tampered", "truncated", "reordered"])
def test_a_wrong_file_is_refused_and_nothing_is_left(tmp_path: Path, damage: str) -> None:
    model = pinned(SLICES)
    slices = {
        "tampered": [SLICES[0][:100] + b"X" + SLICES[0][101:], *SLICES[1:]],
        "truncated": [SLICES[0], SLICES[1][:-7], SLICES[2]],
        "reordered": [SLICES[1], SLICES[0], SLICES[2]],
    }[damage]
    out = tmp_path / "m.gguf"
    with pytest.raises(ModelLoadError, match="not the pinned file.*nothing was cached"):
        catalog.join_slices(fake_wheels(tmp_path, slices), out, model)
    assert not out.exists()


def test_install_caches_nothing_when_the_hash_differs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INTERLACE_CACHE", str(tmp_path / "cache"))
    model = catalog.NamedModel("fake", "", ("fake-part1==1.0",), "0" * 64, 4)
    monkeypatch.setattr(catalog, "named", lambda name: model)
    monkeypatch.setattr(catalog, "download_parts", lambda m, dest: fake_wheels(tmp_path, [b"GGUF"]))
    with pytest.raises(ModelLoadError, match="sha256"):
        catalog.install("fake")
    assert not model.directory.exists()
    assert list((tmp_path / "cache" / "models").iterdir()) == []  # no temporary left either


@pytest.mark.parametrize(
    ("typo", "suggestion"),
    [("gemma-3-270", GEMMA), ("qwen2.5-coder-0.5b", QWEN), ("smollm2-135", "smollm2-135m")],
)
def test_a_name_with_a_typo_suggests_the_closest(typo: str, suggestion: str) -> None:
    with pytest.raises(ModelLoadError, match=f"did you mean '{suggestion}'"):
        il.load(typo)


def test_a_model_not_installed_names_the_install_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INTERLACE_CACHE", str(tmp_path))
    with pytest.raises(ModelLoadError, match=f"interlace models install {GEMMA}"):
        il.load(GEMMA)


@pytest.mark.slow
def test_parameter_count_from_the_config(smollm2: Any, real_model: Any) -> None:
    """The estimate equals the weights actually loaded, to the norms and biases it leaves out."""
    for m in (smollm2, real_model):
        actual = sum(p.numel() for p in m.hf.parameters())
        estimate = memory.parameter_count(m.hf.config)
        assert abs(estimate - actual) / actual < 0.01, (m.name, estimate, actual)


def test_a_model_too_large_for_free_memory_is_refused_before_loading(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(memory, "available_bytes", lambda: 100 * 2**20)
    loaded: list[Any] = []
    monkeypatch.setattr("interlace.models.loading._from_hub_or_dir", lambda *a: loaded.append(a))
    with pytest.raises(ModelLoadError) as err:
        il.load("smollm2-135m")
    message = str(err.value)
    assert "GiB" in message and "0.1 GiB is free" in message and "bfloat16" in message
    assert loaded == []


def test_honouring_add_bos_makes_the_tokenizer_add_it(smollm2: Any) -> None:
    """The mechanism the GGUF conversion uses, on a tokenizer that adds no BOS by itself."""
    import copy

    tok = copy.deepcopy(smollm2.tokenizer)
    plain = tok("Hello world")["input_ids"]
    assert plain[0] != tok.bos_token_id
    honour_special_tokens(tok, {"add_bos_token": True})
    assert tok("Hello world")["input_ids"] == [tok.bos_token_id, *plain]


@pytest.fixture(scope="session", params=[GEMMA, QWEN])
def real_model(request: pytest.FixtureRequest) -> Any:
    """Each installed real model (float32); fails with the install command if it is missing."""
    return il.load(request.param)


@pytest.mark.slow
def test_gemma_gets_its_bos_and_answers_berlin() -> None:
    gemma = il.load(GEMMA)
    prompt = "The capital of France is Paris. The capital of Germany is"
    ids = gemma.tokenizer(prompt)["input_ids"]
    assert ids[0] == gemma.tokenizer.bos_token_id == 2
    out = il.run(gemma, il.Graph(), prompt)
    assert out.prompt_tokens[0][0] == 2
    top = int(out.logits.values[0].argmax())
    assert gemma.tokenizer.decode([top]) == " Berlin"


@pytest.mark.slow
def test_qwen_adds_no_bos_and_has_untied_unembedding() -> None:
    qwen = il.load(QWEN)
    ids = qwen.tokenizer("Hello")["input_ids"]
    assert qwen.tokenizer.decode(ids) == "Hello"
    assert not qwen.hf.config.tie_word_embeddings
    w_e, w_u = qwen.weight("W_E"), qwen.weight("W_U")
    assert w_e.shape == w_u.shape and (w_e - w_u).abs().max() > 1e-3


@pytest.mark.slow
def test_a_base_model_without_chat_template_refuses_chat_prompts() -> None:
    gemma = il.load(GEMMA)
    with pytest.raises(ValueError, match="no chat template"):
        il.run(gemma, il.Graph(), [il.ChatPrompt(user="Hi")])


def test_models_command_lists_named_models_and_whether_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from typer.testing import CliRunner

    from interlace.cli import app

    runner = CliRunner()
    listed = json.loads(runner.invoke(app, ["models", "--json"]).output)["named"]
    assert {m["name"]: m["installed"] for m in listed}[GEMMA] is True  # the set-up installed it
    monkeypatch.setenv("INTERLACE_CACHE", str(tmp_path))
    listed = json.loads(runner.invoke(app, ["models", "--json"]).output)["named"]
    assert {m["name"]: m["installed"] for m in listed}[GEMMA] is False
    typo = runner.invoke(app, ["models", "install", "gemma-3-27m"])
    assert typo.exit_code == 2
    assert "did you mean 'gemma-3-270m'" in " ".join(typo.output.split())
