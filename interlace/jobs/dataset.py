"""Datasets a job reads: JSONL files (a path or fsspec URL) or lists of records, read lazily.

Each record holds a prompt in its text field and any other fields, which become coordinates
along ``example``. The text field is ``text_field`` when given, else ``text`` or ``messages``,
whichever the record has. Its value decides the kind of prompt:

- a string: plain text;
- a list of ints: token ids, used as they are;
- a list of ``{"role", "content"}`` messages: an optional ``system`` message, one ``user``
  message and an optional final ``assistant`` message (the start of the reply), rendered with
  the model's chat template (see :class:`interlace.ChatPrompt`).

Other fields become typed coordinates: all bools -> ``bool``, all ints -> ``int64``, numbers
(ints and floats, some missing or null) -> ``float64`` with NaN for the missing, and anything
else (strings, nested values, mixtures) -> strings: a string as it is, another value as JSON,
a missing one as ``""``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from interlace.interventions import Problem, ValidationError
from interlace.runtime.prompts import Batch, ChatPrompt, Prompt, encode
from interlace.runtime.selection import real_positions
from interlace.stores.schema import STRING, FieldKind, coordinate_dtype

TEXT_FIELDS = ("text", "messages")


@dataclass(frozen=True)
class Example:
    """One record: its prompt and its other fields."""

    prompt: Prompt
    fields: dict[str, Any]


class Dataset:
    """Records from a JSONL file or a sequence of mappings, read in order, lazily.

    A file (a path, or a URL opened with fsspec's configuration) is read line by line on every
    pass, so memory does not grow with its size; blank lines are skipped. Problems name the
    line (file) or index (list) they are on.
    """

    def __init__(
        self, source: str | os.PathLike | Sequence[Mapping[str, Any]], text_field: str | None = None
    ) -> None:
        self.source = source
        self.text_field = text_field
        self.is_file = isinstance(source, (str, os.PathLike))

    def missing(self) -> Problem | None:
        """A problem if the dataset is a local file that does not exist (checked up front)."""
        path = str(self.source)
        if self.is_file and ("://" not in path or path.startswith("file://")):
            if not os.path.isfile(path.removeprefix("file://")):
                return Problem("dataset", f"no such file: {path}", "a JSONL file or URL")
        return None

    def describe(self) -> str:
        return str(self.source) if self.is_file else f"<{len(self.source)} records>"

    def _where(self, index: int) -> str:
        return f"dataset line {index + 1}" if self.is_file else f"dataset[{index}]"

    def records(self) -> Iterator[tuple[str, Any]]:
        """``(where, record)`` for every record, in order."""
        if not self.is_file:
            for i, rec in enumerate(self.source):
                yield self._where(i), rec
            return
        import fsspec

        try:
            with fsspec.open(str(self.source), "rt", encoding="utf-8") as lines:
                for i, line in enumerate(lines):
                    if line.strip():
                        try:
                            yield self._where(i), json.loads(line)
                        except json.JSONDecodeError as err:
                            raise _fail(self._where(i), f"not valid JSON: {err}") from None
        except OSError as err:
            raise _fail("dataset", f"cannot read {self.source}: {err}") from None

    def examples(self) -> Iterator[Example]:
        """Every record as an :class:`Example`; a malformed record raises ``ValidationError``."""
        for _, _, example in self.parsed():
            yield example

    def parsed(self) -> Iterator[tuple[str, Any, Example]]:
        """``(where, record, example)`` for every record, in order."""
        for where, rec in self.records():
            if not isinstance(rec, Mapping):
                raise _fail(where, f"a record is a JSON object, not {type(rec).__name__}")
            name = self._text_field_of(rec, where)
            fields = {k: v for k, v in rec.items() if k != name}
            yield where, rec, Example(prompt_of(rec[name], f"{where}.{name}"), fields)

    def _text_field_of(self, rec: Mapping[str, Any], where: str) -> str:
        if self.text_field is not None:
            if self.text_field not in rec:
                raise _fail(
                    where,
                    f"no {self.text_field!r} field (fields: {', '.join(map(str, rec)) or 'none'})",
                    f"records with a {self.text_field!r} field",
                )
            return self.text_field
        present = [f for f in TEXT_FIELDS if f in rec]
        if len(present) != 1:
            what = "both 'text' and 'messages'" if present else "no 'text' or 'messages' field"
            raise _fail(
                where,
                f"{what} (fields: {', '.join(map(str, rec)) or 'none'})",
                "a 'text' or a 'messages' field, or name the text field (text_field)",
            )
        return present[0]


@dataclass(frozen=True)
class Summary:
    """What one pass over a dataset found: all the store's layout and identity need from it."""

    n_examples: int
    sha256: str
    """SHA-256 of the records' canonical JSON, in order (key order and spacing do not count)."""
    fields: dict[str, FieldKind]
    max_selected: int
    """The most positions any example selects (the length of the ``position`` dim)."""


MAX_PROBLEMS = 10


def scan(
    dataset: Dataset,
    tokenizer: Any,
    positions: Any,
    max_tokens: int | None = None,
    chunk: int = 256,
) -> Summary:
    """Read the whole dataset once, tokenizing every prompt: count, hash, field types, and every
    problem a forward pass would meet later (no tokens, too many, a position outside a prompt),
    so that a bad dataset is refused before any model runs. Memory stays flat: one chunk of
    prompts at a time."""
    sha = hashlib.sha256()
    kinds = FieldKinds()
    problems: list[Problem] = []
    most = 0
    pending: list[tuple[str, Prompt]] = []

    def check(items: list[tuple[str, Prompt]]) -> None:
        nonlocal most
        if getattr(tokenizer, "chat_template", None) is None:
            chats = [where for where, p in items if isinstance(p, ChatPrompt)]
            problems.extend(
                Problem(
                    w,
                    "chat messages, but the tokenizer has no chat template",
                    "plain text or token ids",
                )
                for w in chats
            )
            items = [(w, p) for w, p in items if not isinstance(p, ChatPrompt)]
        lengths = _lengths(tokenizer, [p for _, p in items])
        for (where, _), n in zip(items, lengths, strict=True):
            problem = _length_problem(where, n, positions, max_tokens)
            if problem is not None:
                problems.append(problem)
            else:
                most = max(most, len(real_positions(positions, n)))

    for where, rec, example in dataset.parsed():
        sha.update(json.dumps(rec, sort_keys=True, separators=(",", ":")).encode() + b"\n")
        kinds.add(example.fields)
        pending.append((where, example.prompt))
        if len(pending) == chunk:
            check(pending)
            pending = []
    check(pending)
    if kinds.n == 0:
        raise _fail("dataset", f"{dataset.describe()} has no records")
    if problems:
        more = len(problems) - MAX_PROBLEMS
        shown = problems[:MAX_PROBLEMS]
        if more > 0:
            shown.append(Problem("dataset", f"... and {more} more problems like these"))
        raise ValidationError(shown)
    if most == 0:
        raise _fail("positions", "the positions select no token of any example")
    return Summary(kinds.n, sha.hexdigest(), kinds.result(), most)


def _lengths(tokenizer: Any, prompts: list[Prompt]) -> list[int]:
    """Token counts, as the runtime tokenizes them (an empty prompt counts 0)."""
    try:
        return encode(tokenizer, prompts).lengths if prompts else []
    except ValueError:  # some prompt has no tokens: find which
        return [_length(tokenizer, p) for p in prompts]


def _length(tokenizer: Any, prompt: Prompt) -> int:
    try:
        return encode(tokenizer, [prompt]).lengths[0]
    except ValueError:
        return 0


def _length_problem(where: str, n: int, positions: Any, max_tokens: int | None) -> Problem | None:
    if n == 0:
        return Problem(where, "the prompt has no tokens")
    if max_tokens is not None and n > max_tokens:
        return Problem(where, f"the prompt has {n} tokens", f"at most {max_tokens} (the model's)")
    try:
        real_positions(positions, n)
    except IndexError:
        return Problem(
            where, f"positions {positions} reach outside its {n}-token prompt", f"-{n} to {n - 1}"
        )
    return None


def prompt_of(value: Any, where: str) -> Prompt:
    """The prompt a text field's value stands for (see the module docstring)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and all(_is_int(t) for t in value):
        return [int(t) for t in value]
    if isinstance(value, list) and value and all(isinstance(m, Mapping) for m in value):
        return _chat(value, where)
    raise _fail(
        where,
        f"cannot make a prompt of {_show(value)}",
        "a string, a non-empty list of token ids, or a list of chat messages",
    )


def _chat(messages: list[Mapping[str, Any]], where: str) -> ChatPrompt:
    roles = [m.get("role") for m in messages]
    contents = [m.get("content") for m in messages]
    if not all(isinstance(c, str) for c in contents):
        raise _fail(where, "every message needs a string 'content'")
    system = contents[0] if roles[0] == "system" else None
    rest = list(zip(roles, contents, strict=True))[1 if system is not None else 0 :]
    prefix = rest.pop()[1] if len(rest) == 2 and rest[1][0] == "assistant" else ""
    if [r for r, _ in rest] != ["user"]:
        raise _fail(
            where,
            f"messages with roles {roles} cannot be rendered",
            "an optional 'system', one 'user', and an optional final 'assistant' prefix",
        )
    return ChatPrompt(user=rest[0][1], system=system, assistant_prefix=prefix)


@dataclass
class FieldKinds:
    """The coordinate type of each field, inferred over a whole pass (see the module docstring)."""

    seen: dict[str, set[str]] = field(default_factory=dict)
    n: int = 0

    def add(self, fields: Mapping[str, Any]) -> None:
        for name in set(self.seen) - set(fields):
            self.seen[name].add("missing")
        for name, value in fields.items():
            kinds = self.seen.setdefault(name, {"missing"} if self.n else set())
            kinds.add(_kind(value))
        self.n += 1

    def result(self) -> dict[str, FieldKind]:
        out: dict[str, FieldKind] = {}
        for name, kinds in self.seen.items():
            if kinds == {"bool"}:
                out[name] = "bool"
            elif kinds == {"int"}:
                out[name] = "int"
            elif kinds & {"int", "float"} and kinds <= {"int", "float", "missing"}:
                out[name] = "float"
            else:
                out[name] = "str"
        return out


def field_arrays(
    examples: Sequence[Example], kinds: Mapping[str, FieldKind]
) -> dict[str, np.ndarray]:
    """Each field's values over ``examples`` as an array of its coordinate type."""
    out = {}
    for name, kind in kinds.items():
        values = [ex.fields.get(name) for ex in examples]
        if kind == "float":
            values = [np.nan if v is None else v for v in values]
        elif kind == "str":
            values = [_text(v) for v in values]
        out[name] = np.array(values, dtype=coordinate_dtype(kind))
    return out


def example_arrays(
    examples: Sequence[Example], kinds: Mapping[str, FieldKind], batch: Batch
) -> dict[str, np.ndarray]:
    """The per-example coordinates of one batch: its fields, ``prompt`` (the text as
    tokenized, ``batch`` being the examples' prompts encoded) and ``n_tokens``."""
    return {
        **field_arrays(examples, kinds),
        "prompt": np.array(batch.texts, dtype=STRING),
        "n_tokens": np.array(batch.lengths, dtype=np.int32),
    }


def _kind(value: Any) -> str:
    if value is None:
        return "missing"
    if isinstance(value, bool):
        return "bool"
    if _is_int(value):
        return "int"
    if isinstance(value, float):
        return "float"
    return "str" if isinstance(value, str) else "other"


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _show(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _fail(where: str, message: str, allowed: str | None = None) -> ValidationError:
    return ValidationError([Problem(where, message, allowed)])
