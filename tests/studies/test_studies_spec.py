"""Study files without running a model: parsing, every problem reported with its path, the
plan a dry run prints, the built-in task generators and the answer checkers."""

from __future__ import annotations

import copy
import json
from fractions import Fraction

import pytest
import yaml

from interlace import datasets
from interlace.interventions import ModelShape, ValidationError
from interlace.studies.conditions import build_graph, parse_path, set_path
from interlace.studies.plan import plan_study
from interlace.studies.scoring import check_countdown, extract, score
from interlace.studies.spec import Study

SHAPE = ModelShape(
    family="llama", n_layers=30, d_model=576, n_heads=9, n_kv_heads=3, head_dim=64,
    d_mlp=1536, vocab=49152,
)  # fmt: skip

STUDY = {
    "model": "smollm2-135m",
    "dataset": {"task": "arithmetic_verification", "n": 6, "seed": 1},
    "batch_size": 4,
    "vectors": {"v": [1.0] * 576, "rnd": {"random": 3, "like": "v"}},
    "conditions": {
        "baseline": {},
        "ablate": {"interventions": [{"kind": "ablate_heads", "layer": 10, "heads": [0, 3]}]},
        "steer": {
            "interventions": [
                {"kind": "add_vector", "site": "resid_post", "layers": [12], "vector": "v"}
            ]
        },
        "steer_random": {"extends": "steer", "set": {"interventions[0].vector": "rnd"}},
        "steer_ablate": {
            "extends": "steer",
            "interventions": [{"kind": "zero_value_vectors", "layer": 3, "indices": [7]}],
        },
    },
    "sweep": {
        "conditions": ["steer", "steer_random"],
        "axes": {
            "coeff": {"field": "interventions[0].coeff", "values": [-4.0, 0.0, 4.0]},
            "at": {"field": "interventions[0].layers", "values": [8, 12, 16]},
        },
    },
    "readouts": [{"kind": "logits", "tokens": [" Yes", " No"], "target": "answer"}],
    "out": "results.zarr",
}


def study(**changes) -> Study:
    data = copy.deepcopy(STUDY)
    data.update(changes)
    return Study.from_dict(data)


def problems_of(data: dict) -> dict[str, str]:
    with pytest.raises(ValidationError) as err:
        plan_study(Study.from_dict(data), SHAPE)
    return {p.path: p.message for p in err.value.problems}


def test_a_study_round_trips_through_yaml():
    s = study()
    assert Study.from_yaml(s.to_yaml()) == s
    assert s.content_hash() == Study.from_yaml(s.to_yaml()).content_hash()


def test_the_plan_counts_runs_units_and_dims():
    plan = plan_study(study(), SHAPE)
    # baseline, ablate, steer_ablate once; steer and steer_random at 3 x 3 points
    assert len(plan.runs) == 3 + 2 * 9
    assert plan.n_batches == 2 and len(plan.units) == 2 * len(plan.runs)
    assert plan.prefix_dims() == ("condition", "coeff", "at", "example")
    assert plan.prefix_shape() == (5, 3, 3, 6)
    assert plan.arrays["logits_logprob"].shape == (5, 3, 3, 6, 2)
    assert plan.forward_passes() == len(plan.units)  # no generation: one forward per unit
    # each array: 4 bytes x its size; the example coordinates besides
    numbers = 4 * (5 * 9 * 6 * 2 + 2 * 5 * 9 * 6)
    assert plan.store_bytes() >= numbers


def test_extends_set_and_sweep_build_each_graph():
    s = study()
    g = build_graph(
        s, "steer_random", {"coeff": 4.0, "at": 16}, {"v": [1.0] * 576, "rnd": [2.0] * 576}
    )
    (add,) = g.interventions
    assert (add.coeff, add.layers.resolve(30), add.vector[0]) == (4.0, [16], 2.0)
    # unswept conditions ignore the point
    g = build_graph(s, "steer_ablate", {"coeff": 4.0, "at": 16}, {"v": [1.0] * 576})
    assert [i.kind for i in g.interventions] == ["add_vector", "zero_value_vectors"]
    assert g.interventions[0].coeff == 1.0 and g.interventions[0].layers.root == [12]


def test_every_problem_is_listed_with_its_path():
    data = copy.deepcopy(STUDY)
    data["conditions"]["ablate"]["interventions"][0]["layer"] = 40
    data["conditions"]["ablate"]["interventions"][0]["heads"] = [0, 12]
    data["conditions"]["steer_ablate"]["interventions"][0]["indices"] = [99999]
    data["sweep"]["axes"]["at"]["values"] = [8, 31]
    data["conditions"]["steer_random"]["set"] = {"interventions[0].vector": "nope"}
    data["conditions"]["loop"] = {"extends": "loop2"}
    data["conditions"]["loop2"] = {"extends": "loop"}
    data["readouts"].append({"kind": "logits", "target": "no_such_field"})
    data["readouts"].append({"kind": "generation"})
    problems = problems_of(data)
    assert (
        problems.pop("conditions.ablate.interventions[0].layer") == "layer 40 of a 30-layer model"
    )
    assert "head 12 is out of range" in problems.pop("conditions.ablate.interventions[0].heads[1]")
    assert "value vector 99999" in problems.pop(
        "conditions.steer_ablate.interventions[0].indices[0]"
    )
    assert "layer 31" in problems.pop("sweep.axes.at.values[1]")
    assert "no vector named 'nope'" in problems.pop(
        'conditions.steer_random.set["interventions[0].vector"]'
    )
    assert "cycle" in problems.pop("conditions.loop.extends")
    assert "cycle" in problems.pop("conditions.loop2.extends")
    assert "'logits' is already the name" in problems.pop("readouts[1].name")
    assert "no field 'no_such_field'" in problems.pop("readouts[1].target")
    assert "reads a generation" in problems.pop("readouts[2].kind")
    assert problems == {}


def test_parse_problems_have_paths_too():
    data = copy.deepcopy(STUDY)
    data["batch_size"] = 0
    data["sweep"]["mode"] = "zipper"
    data["conditions"]["steer"]["extnds"] = "x"
    data["readouts"][0]["kind"] = "logit"
    with pytest.raises(ValidationError) as err:
        Study.from_dict(data)
    paths = {p.path for p in err.value.problems}
    assert {"batch_size", "sweep.mode", "conditions.steer.extnds", "readouts[0].kind"} <= paths


def test_sweep_problems():
    data = copy.deepcopy(STUDY)
    data["sweep"]["conditions"] = ["steer", "ghost"]
    assert "no condition 'ghost'" in problems_of(data)["sweep.conditions[1]"]
    data = copy.deepcopy(STUDY)
    data["sweep"]["axes"]["coeff"]["field"] = "interventions[3].coeff"
    assert "has 1 entries: no [3]" in problems_of(data)["sweep.axes.coeff.field"]
    data = copy.deepcopy(STUDY)
    data["sweep"]["mode"] = "zip"
    data["sweep"]["axes"]["at"]["values"] = [8, 12]
    with pytest.raises(ValidationError, match="zipped axes differ in length"):
        Study.from_dict(data)


def test_zip_sweep_has_one_point_dim():
    data = copy.deepcopy(STUDY)
    data["sweep"]["mode"] = "zip"
    plan = plan_study(Study.from_dict(data), SHAPE)
    assert plan.prefix_dims() == ("condition", "point", "example")
    assert plan.coords["coeff"] == (("point",), [-4.0, 0.0, 4.0])
    assert plan.coords["at"] == (("point",), [8, 12, 16])
    assert len(plan.runs) == 3 + 2 * 3


def test_dataset_problems():
    data = copy.deepcopy(STUDY)
    data["dataset"] = {"task": "sudoku", "n": 3}
    assert "unknown task 'sudoku'" in problems_of(data)["dataset.task"]
    data["dataset"] = {"task": "capitals", "n": 3, "options": {"max_sum": 3}}
    assert "takes no option 'max_sum'" in problems_of(data)["dataset.options.max_sum"]
    data["dataset"] = {"path": "missing.jsonl"}
    assert "no such file" in problems_of(data)["dataset.path"]


def test_field_paths():
    assert parse_path("interventions[0].coeff") == ["interventions", 0, "coeff"]
    for bad in ("", "a..b", "a[x]", ".a", "a."):
        with pytest.raises(ValueError):
            parse_path(bad)
    data = {"interventions": [{"coeff": 1.0}]}
    set_path(data, "interventions[0].coeff", 2.0)
    set_path(data, "interventions[0].layers", [3])
    assert data == {"interventions": [{"coeff": 2.0, "layers": [3]}]}
    with pytest.raises(ValueError, match="no field 'x'"):
        set_path(data, "x.y", 1)


@pytest.mark.parametrize("task", sorted(datasets.TASKS))
def test_generators_are_seeded_and_json_ready(task):
    make = datasets.TASKS[task]
    a, b, c = make(12, seed=5), make(12, seed=5), make(12, seed=6)
    assert a == b and a != c and len(a) == 12
    json.dumps(a)
    assert all(("text" in r) != ("messages" in r) for r in a)


def test_arithmetic_verification_answers_are_right():
    for rec in datasets.arithmetic_verification(40, seed=2):
        a, b, c = map(int, rec["statement"].replace("+", " ").replace("=", " ").split())
        assert rec["answer"] == (" Yes" if a + b == c else " No")
        assert rec["text"].endswith("Answer:")
    chat = datasets.arithmetic_verification(4, seed=2, chat=True)
    assert chat[0]["answer"] in ("Yes", "No") and "messages" in chat[0]


def test_capitals_and_multiple_choice_answers():
    known = dict(datasets.CAPITALS)
    for rec in datasets.capitals(25, seed=1):
        assert rec["answer"] == " " + known[rec["country"]]
        assert rec["text"] == f"The capital of {rec['country']} is"
    for rec in datasets.multiple_choice(10, seed=1):
        letter = rec["answer"].strip()
        right = rec["choices"][rec["label"]]
        assert f"{letter}. {right}" in rec["text"]
        question = rec["text"].split("\n")[0]
        if question.startswith("What is the capital of"):
            assert right == known[question.removeprefix("What is the capital of ").rstrip("?")]
        else:
            a, b = question.removeprefix("What is ").rstrip("?").split(" + ")
            assert right == str(int(a) + int(b))


def test_countdown_solutions_check_and_the_checker_is_safe():
    for rec in datasets.countdown(30, seed=4):
        assert check_countdown(rec["solution"], rec["numbers"], rec["target"])
        assert rec["target"] > 0
    # hand-computed cases
    assert check_countdown("(3 + 5) * 2", [2, 3, 5], 16)
    assert check_countdown("10 / 4 * 2", [2, 4, 10], 5)  # exact fractions
    assert not check_countdown("3 + 5 * 2", [2, 3, 5], 16)  # 13
    assert not check_countdown("3 + 3", [3, 5], 6)  # 3 used twice
    assert not check_countdown("7 + 1", [1, 5], 8)  # 7 not offered
    assert not check_countdown("5 / (3 - 3)", [3, 3, 5], 1)  # division by zero
    assert not check_countdown("2 ** 3", [2, 3], 8)
    assert not check_countdown("__import__('os').system('true')", [1], 1)
    assert not check_countdown("(lambda: 1)()", [1], 1)
    assert not check_countdown("1.5 * 2", [2], 3)  # only whole numbers
    assert not check_countdown("", [1], 1)
    assert score("2 * 3 = 6", "countdown", {"numbers": [2, 3], "target": 6}, None) == 1.0
    assert Fraction(1, 3) * 3 == 1  # the arithmetic the checker relies on


def test_extractors_and_exact_match():
    assert extract("Yes, it is.", "yes_no") == "Yes"
    assert extract("no way", "yes_no") == "No"
    assert extract("I cannot say", "yes_no") is None
    assert extract("3 + 4 is 7, or 8", "last_number") == "8"
    assert extract("\n Paris\nLondon", "first_line") == "Paris"
    assert extract("The answer is (B).", "letter") == "B"
    assert extract("answer: 42!", "regex", r"answer: (\d+)") == "42"
    assert score("Yes", "exact_match", {"answer": " yes"}, "answer") == 1.0
    assert score("No", "exact_match", {"answer": " Yes"}, "answer") == 0.0
    assert score(None, "exact_match", {"answer": "Yes"}, "answer") == 0.0


def test_dry_run_prints_the_plan_and_lists_problems(tmp_path, monkeypatch):
    """The CLI, on the bundled model's config: weights never load."""
    from typer.testing import CliRunner

    from interlace.cli import app
    from interlace.models import loading

    def no_weights(*args, **kwargs):
        raise AssertionError("a dry run loaded weights")

    monkeypatch.setattr(loading, "_from_hub_or_dir", no_weights)
    monkeypatch.setenv("COLUMNS", "200")
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(STUDY, sort_keys=False))
    bad_data = copy.deepcopy(STUDY)
    bad_data["conditions"]["ablate"]["interventions"][0]["layer"] = 40
    bad_data["sweep"]["axes"]["at"]["values"] = [8, 77]
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(bad_data, sort_keys=False))
    out = CliRunner().invoke(app, ["study", str(good), "--dry-run"])
    assert out.exit_code == 0, out.output
    assert "units (run x batch): 42" in out.output
    assert "forward passes: 42" in out.output
    assert "results dims: (condition=5, coeff=3, at=3, example=6)" in out.output
    assert "expected store size" in out.output
    out = CliRunner().invoke(app, ["study", str(bad), "--dry-run"])
    assert out.exit_code == 1
    text = " ".join(out.output.split())
    assert "conditions.ablate.interventions[0].layer: layer 40 of a 30-layer model" in text
    assert "sweep.axes.at.values[1]: layer 77 of a 30-layer model" in text
