"""Chat templates: how a list of `{"role", "content"}` messages becomes the text a model continues.

An instruction-tuned run (made by `genloom tune sft` on chat data) stores its template in the run
directory as `chat_template.json`; its role markers are special tokens of the run's tokenizer, so each
is one token the model learned. A base run has no template: it gets a plain role-prefixed rendering
("User: ...\\nAssistant:") and simply continues the text. Both the `chat` CLI and the server's
`/v1/chat/completions` render through `render_messages`, so a run chats the same way everywhere.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from genloom.errors import UserError

CHAT_TEMPLATE = "chat_template.json"  # in the run directory
ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class ChatTemplate:
    """Role markers and the end-of-turn marker; every one is a special token of the run's tokenizer.

    A turn renders as `<marker>content<end>\\n`; generation starts after the assistant marker and
    stops at `end`, which is why `end` is also the stop sequence of a chat request."""

    system: str = "<|system|>"
    user: str = "<|user|>"
    assistant: str = "<|assistant|>"
    end: str = "<|end|>"

    @property
    def special_tokens(self) -> list[str]:
        return [self.system, self.user, self.assistant, self.end]

    def marker(self, role: str) -> str:
        return {"system": self.system, "user": self.user, "assistant": self.assistant}[role]

    def render(self, messages: Sequence[Mapping[str, str]], add_generation_prompt: bool = True) -> str:
        text = "".join(f"{self.marker(m['role'])}{m['content']}{self.end}\n" for m in check_messages(messages))
        return text + (self.assistant if add_generation_prompt else "")

    def save(self, run_dir: str | Path) -> Path:
        path = Path(run_dir) / CHAT_TEMPLATE
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, run_dir: str | Path) -> ChatTemplate | None:
        """The run's template, or None for a base run (no `chat_template.json`)."""
        path = Path(run_dir) / CHAT_TEMPLATE
        if not path.exists():
            return None
        try:
            raw = json.loads(path.read_text())
            return cls(**{k: str(raw[k]) for k in ("system", "user", "assistant", "end")})
        except (ValueError, KeyError, TypeError) as e:
            raise UserError(f"{path}: not a chat template (needs system, user, assistant, end strings): {e}") from None


def check_messages(messages: Sequence[Mapping[str, str]]) -> list[Mapping[str, str]]:
    """The messages, or a one-line error naming the first bad one (field `messages[i].role` etc.)."""
    if not isinstance(messages, Sequence) or isinstance(messages, str) or not messages:
        raise UserError("messages: expected a non-empty list of {role, content} objects")
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping):
            raise UserError(f"messages[{i}]: expected an object with 'role' and 'content'")
        if m.get("role") not in ROLES:
            raise UserError(f"messages[{i}].role: expected one of {', '.join(ROLES)}, got {m.get('role')!r}")
        if not isinstance(m.get("content"), str):
            raise UserError(f"messages[{i}].content: expected a string")
    return list(messages)


def render_plain(messages: Sequence[Mapping[str, str]], add_generation_prompt: bool = True) -> str:
    """A base run's rendering: `Role: content` lines, then `Assistant:` for the model to continue."""
    text = "".join(f"{m['role'].capitalize()}: {m['content']}\n" for m in check_messages(messages))
    return text + ("Assistant:" if add_generation_prompt else "")


def render_messages(
    messages: Sequence[Mapping[str, str]], template: ChatTemplate | None, add_generation_prompt: bool = True
) -> str:
    """The prompt text for `messages`: the run's template, or the plain rendering for a base run."""
    if template is None:
        return render_plain(messages, add_generation_prompt)
    return template.render(messages, add_generation_prompt)


def stop_sequences(template: ChatTemplate | None) -> tuple[str, ...]:
    """Where an assistant turn ends: the end marker, or (base run) the next role line."""
    if template is None:
        return ("\nUser:", "\nSystem:")
    return (template.end,)
