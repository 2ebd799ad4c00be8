"""Prompts and batches: chat rendering, left-padded tokenisation, position ids.

Left padding puts every example's real tokens at the right edge, so the last position of a
batch row is its last real token. Real position ``p`` of row ``b`` sits at index
``p + pad[b]``; position ids count real tokens only, so a padded row sees the same positions
as when it runs alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union

import torch


@dataclass(frozen=True)
class ChatPrompt:
    """A prompt rendered with the model's chat template.

    ``assistant_prefix`` is appended after the template's generation prompt, as the start of
    the assistant's reply: a study can force a model's thinking (``"<think>\\n"``) or skip it
    (``"<think>\\n\\n</think>\\n\\n"``) this way. ``system=None`` keeps the template's default.
    """

    user: str
    system: str | None = None
    assistant_prefix: str = ""


Prompt = Union[str, ChatPrompt, list[int]]  # noqa: UP007 (a runtime alias)
"""Plain text, a chat prompt, or token ids (used as they are)."""


def render(tokenizer: Any, prompt: Prompt) -> tuple[str, bool]:
    """The text to tokenize for ``prompt``, and whether the tokenizer should add special tokens
    (not for chat text, whose template already wrote them)."""
    if isinstance(prompt, str):
        return prompt, True
    if not isinstance(prompt, ChatPrompt):
        raise TypeError(f"a prompt is a str or a ChatPrompt, not {type(prompt).__name__}")
    if getattr(tokenizer, "chat_template", None) is None:
        raise ValueError("this model's tokenizer has no chat template; pass plain text prompts")
    messages = [{"role": "user", "content": prompt.user}]
    if prompt.system is not None:
        messages.insert(0, {"role": "system", "content": prompt.system})
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return text + prompt.assistant_prefix, False


@dataclass
class Batch:
    """Tokenised prompts, left-padded."""

    input_ids: torch.Tensor  # [batch, seq]
    attention_mask: torch.Tensor  # [batch, seq]
    position_ids: torch.Tensor  # [batch, seq]
    lengths: list[int]  # real tokens per row
    texts: list[str]

    @property
    def size(self) -> int:
        return len(self.lengths)

    @property
    def width(self) -> int:
        return self.input_ids.shape[1]

    def pad(self, row: int) -> int:
        return self.width - self.lengths[row]

    def model_inputs(self) -> dict[str, torch.Tensor]:
        return {
            "input_ids": self.input_ids,
            "attention_mask": self.attention_mask,
            "position_ids": self.position_ids,
        }


def encode_ids(rows: list[list[int]], pad_id: int, texts: list[str] | None = None) -> Batch:
    """Left-pad token id lists into a :class:`Batch`."""
    if not rows or any(len(r) == 0 for r in rows):
        raise ValueError("every prompt must have at least one token")
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for b, r in enumerate(rows):
        ids[b, width - len(r) :] = torch.tensor(r, dtype=torch.long)
        mask[b, width - len(r) :] = 1
    position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
    return Batch(ids, mask, position_ids, [len(r) for r in rows], texts or ["" for _ in rows])


def encode(tokenizer: Any, prompts: list[Prompt]) -> Batch:
    """Render and tokenize prompts (each on its own, so batching never changes the tokens)."""
    texts, rows = [], []
    for p in prompts:
        if isinstance(p, (list, tuple)):
            texts.append(tokenizer.decode(list(p)))
            rows.append([int(t) for t in p])
            continue
        text, special = render(tokenizer, p)
        texts.append(text)
        rows.append(tokenizer(text, add_special_tokens=special)["input_ids"])
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return encode_ids(rows, pad_id, texts)
