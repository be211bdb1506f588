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
from dataclasses import asdict, dataclass, field
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any, NoReturn

from genloom.errors import UserError

CHAT_TEMPLATE = "chat_template.json"  # in the run directory
TOOL_RESULT = "Tool result: "  # how genloom's own template and the plain rendering introduce a tool's result
ROLES = ("system", "user", "assistant", "tool")  # "tool": a tool's result, answering the assistant's call


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
        """A tool's result comes back in a user turn that says so (the template has no tool marker)."""
        return {"system": self.system, "user": self.user, "assistant": self.assistant, "tool": self.user}[role]

    def render(self, messages: Sequence[Mapping[str, str]], add_generation_prompt: bool = True) -> str:
        text = "".join(
            f"{self.marker(m['role'])}{TOOL_RESULT if m['role'] == 'tool' else ''}{m['content']}{self.end}\n"
            for m in check_messages(messages)
        )
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


class RenderedChat(str):
    """Prompt text rendered by a pretrained chat template: it already holds every special token the model
    expects (`<|im_start|>`, a start-of-text token), so it is encoded without adding any."""


def _raise_exception(message: str) -> NoReturn:
    """What templates call to refuse a conversation (e.g. roles out of order)."""
    from jinja2.exceptions import TemplateError

    raise TemplateError(message)


def _tojson(
    x: Any, ensure_ascii: bool = False, indent: int | None = None, separators: Any = None, sort_keys: bool = False
) -> str:
    """transformers' `tojson`: plain JSON, no HTML escaping (Jinja's own filter escapes `<`, `>`, `&`)."""
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _strftime_now(format: str) -> str:
    return datetime.now().strftime(format)


@dataclass(frozen=True)
class JinjaChatTemplate:
    """A pretrained model's own Jinja chat template with its special tokens (`bos_token`, `eos_token`, ...).

    `source` names where it came from, for error messages; `end` is the end-of-turn text the reply stops
    at (the tokenizer's end-of-sequence token: generation also stops at its id)."""

    template: str
    source: str
    tokens: Mapping[str, str] = field(default_factory=dict)  # bos_token, eos_token, unk_token, pad_token

    @cached_property
    def _compiled(self) -> Any:
        import jinja2
        from jinja2.ext import loopcontrols
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
        env.filters["tojson"] = _tojson
        env.globals["raise_exception"] = _raise_exception
        env.globals["strftime_now"] = _strftime_now
        try:
            return env.from_string(self.template)
        except jinja2.TemplateError as e:
            raise UserError(f"{self.source}: the chat template does not compile: {e}") from None

    def render(self, messages: Sequence[Mapping[str, str]], add_generation_prompt: bool = True) -> RenderedChat:
        """The prompt text for `messages`, exactly as transformers' `apply_chat_template(tokenize=False)`."""
        import jinja2

        messages = [dict(m) for m in check_messages(messages)]
        compiled = self._compiled
        try:
            text = compiled.render(messages=messages, add_generation_prompt=add_generation_prompt, **dict(self.tokens))
        except jinja2.exceptions.SecurityError as e:
            raise UserError(f"{self.source}: the chat template tried to leave its sandbox ({e})") from None
        except jinja2.TemplateError as e:
            raise UserError(f"{self.source}: the chat template refused these messages: {e}") from None
        except Exception as e:  # a template bug (a bad index, a type error) is the template's, named as such
            raise UserError(f"{self.source}: the chat template failed ({type(e).__name__}: {e})") from None
        return RenderedChat(text)

    @property
    def special_tokens(self) -> list[str]:
        return []  # the tokenizer already has them

    @property
    def end(self) -> str | None:
        return self.tokens.get("eos_token")


def pretrained_template(
    directory: Path, config: Mapping[str, Any], tokens: Mapping[str, str]
) -> JinjaChatTemplate | None:
    """The Jinja template a pretrained directory ships (`chat_template.jinja`, or `chat_template` in its
    `tokenizer_config.json` config), with its special tokens' texts; None when it has none."""
    jinja = directory / "chat_template.jinja"
    if jinja.exists():
        return JinjaChatTemplate(jinja.read_text(encoding="utf-8"), str(jinja), tokens)
    template = config.get("chat_template")
    if isinstance(template, list):  # named templates: the "default" one is the chat template
        template = next((t.get("template") for t in template if t.get("name") == "default"), None)
    if not isinstance(template, str):
        return None
    return JinjaChatTemplate(template, str(directory / "tokenizer_config.json"), tokens)


AnyChatTemplate = ChatTemplate | JinjaChatTemplate


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
    text = "".join(
        f"{'User: ' + TOOL_RESULT if m['role'] == 'tool' else m['role'].capitalize() + ': '}{m['content']}\n"
        for m in check_messages(messages)
    )
    return text + ("Assistant:" if add_generation_prompt else "")


def render_messages(
    messages: Sequence[Mapping[str, str]], template: AnyChatTemplate | None, add_generation_prompt: bool = True
) -> str:
    """The prompt text for `messages`: the run's template (genloom's or a pretrained model's Jinja one),
    or the plain rendering for a base run."""
    if template is None:
        return render_plain(messages, add_generation_prompt)
    return template.render(messages, add_generation_prompt)


def stop_sequences(template: AnyChatTemplate | None) -> tuple[str, ...]:
    """Where an assistant turn ends: the end marker, or (base run) the next role line. A pretrained
    template's turn ends at the end-of-sequence token, which generation stops at by its id."""
    if template is None:
        return ("\nUser:", "\nSystem:")
    return (template.end,) if template.end else ()
