"""Fine-tuning data: JSONL records read strictly, split by a stable hash, and tokenized for each method.

Formats (one JSON object per line; blank lines are skipped):
- SFT: `{"prompt": str, "response": str}` or chat `{"messages": [{"role", "content"}, ...]}` whose last
  message is the assistant's (the loss covers every assistant turn).
  TRL's forms work too: `{"prompt": str, "completion": str}` and conversational
  `{"prompt": [messages], "completion": [messages]}`.
- Preference pairs (reward model, DPO): `{"prompt": str, "chosen": str, "rejected": str}`, or TRL's
  conversational form (`prompt` one user message, `chosen`/`rejected` one assistant message each).
- Prompts (PPO): `{"prompt": str}`; extra fields are ignored, so a preference file works too.

Every mistake is a `UserError` naming the file, the line and the field: malformed JSON, a missing or
non-string field, an empty response, a pair whose chosen and rejected answers are identical.
The train/validation split is decided by a hash of each record's prompt (as `data/parallel.py` does
for sentence pairs), so it never changes when the file grows and a prompt never sits on both sides.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genloom.chat import TOOL_RESULT, ChatTemplate, check_messages
from genloom.data.files import read_data_file
from genloom.data.pii import Scrubber
from genloom.errors import UserError
from genloom.generation.tools import render_call_message


@dataclass(frozen=True)
class SFTExample:
    """One supervised example as text segments; `trained[i]` says whether segment i is in the loss."""

    segments: tuple[str, ...]
    trained: tuple[bool, ...]
    key: str  # what the split hashes (the prompt)


@dataclass(frozen=True)
class PreferencePair:
    prompt: str
    chosen: str
    rejected: str


def scrubbed(value: Any, scrubber: Scrubber | None) -> Any:
    """`value` (a record, or any JSON value in it) with personal data in every string replaced."""
    if scrubber is None:
        return value
    if isinstance(value, str):
        return scrubber(value)
    if isinstance(value, list):
        return [scrubbed(v, scrubber) for v in value]
    if isinstance(value, dict):
        return {k: scrubbed(v, scrubber) for k, v in value.items()}
    return value


def read_jsonl(path: str | Path, scrubber: Scrubber | None = None) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-blank line of a .jsonl (or .jsonl.gz) file; with `scrubber`,
    personal data in every string of the records becomes placeholders (genloom/data/pii.py)."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"--data {path}: no such file (expected a .jsonl file)")
    try:
        raw = read_data_file(path)
        raw = gzip.decompress(raw) if path.suffix == ".gz" else raw
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text (undecodable byte at offset {e.start})") from None
    except OSError as e:
        raise UserError(f"{path}: cannot read it ({e})") from None
    records = []
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(f"{path}:{lineno}: not valid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(record, dict):
            raise UserError(f"{path}:{lineno}: expected a JSON object, got {type(record).__name__}")
        records.append((lineno, scrubbed(record, scrubber)))
    if not records:
        raise UserError(f"{path}: no records (expected one JSON object per line)")
    return records


def _field(path: Path, lineno: int, record: dict[str, Any], name: str, allow_empty: bool = False) -> str:
    value = record.get(name)
    if not isinstance(value, str):
        got = "missing" if name not in record else f"a {type(value).__name__}"
        raise UserError(f"{path}:{lineno}: field {name!r} must be a string ({got})")
    if not allow_empty and not value.strip():
        raise UserError(f"{path}:{lineno}: field {name!r} is empty")
    return value


def read_sft(path: str | Path, template: ChatTemplate, scrubber: Scrubber | None = None) -> list[SFTExample]:
    """SFT examples rendered with `template`: prompt/response records become one user turn and one
    assistant turn; chat records keep their turns. Only assistant content and its end marker train."""
    path = Path(path)
    examples = []
    for lineno, record in read_jsonl(path, scrubber):
        if "messages" in record:
            try:
                messages = check_messages(_calls_as_text(record["messages"]))
            except UserError as e:
                raise UserError(f"{path}:{lineno}: {e}") from None
            if messages[-1]["role"] != "assistant":
                raise UserError(f"{path}:{lineno}: field 'messages' must end with an assistant message")
            for i, m in enumerate(messages):
                if m["role"] == "assistant" and not m["content"].strip():
                    raise UserError(f"{path}:{lineno}: messages[{i}].content: empty assistant response")
        elif isinstance(record.get("prompt"), list) and isinstance(record.get("completion"), list):
            messages = _turns(path, lineno, record["prompt"] + record["completion"], "prompt + completion")
            if messages[-1]["role"] != "assistant":
                raise UserError(f"{path}:{lineno}: field 'completion' must end with an assistant message")
        elif "prompt" in record or "response" in record or "completion" in record:
            answer = "completion" if "completion" in record and "response" not in record else "response"  # TRL's name
            prompt = _field(path, lineno, record, "prompt", allow_empty=True)
            response = _field(path, lineno, record, answer)
            messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]
        else:
            raise UserError(
                f"{path}:{lineno}: expected fields 'prompt' and 'response', or 'messages' (or TRL's 'prompt' and "
                "'completion')"
            )
        segments: list[str] = []
        trained: list[bool] = []
        for m in messages:
            if m["role"] == "assistant":
                segments += [template.assistant, m["content"] + template.end, "\n"]
                trained += [False, True, False]
            else:
                result = TOOL_RESULT if m["role"] == "tool" else ""
                segments.append(f"{template.marker(m['role'])}{result}{m['content']}{template.end}\n")
                trained.append(False)
        key = "\x00".join(m["content"] for m in messages if m["role"] != "assistant")
        examples.append(SFTExample(tuple(segments), tuple(trained), key))
    return examples


def _calls_as_text(messages: Any) -> Any:
    """OpenAI assistant messages with `tool_calls` as the call block the model writes (generation/tools.py)."""
    if not isinstance(messages, list):
        return messages
    out = []
    for m in messages:
        if isinstance(m, dict) and m.get("tool_calls"):
            m = {"role": m.get("role"), "content": (m.get("content") or "") + render_call_message(m["tool_calls"])}
        out.append(m)
    return out


def _turns(path: Path, lineno: int, value: Any, name: str) -> list[Mapping[str, str]]:
    try:
        return check_messages(value)
    except UserError as e:
        raise UserError(f"{path}:{lineno}: {name}: {e}") from None


def _conversational(path: Path, lineno: int, record: dict[str, Any], name: str, role: str) -> str:
    """TRL's conversational form of a field — a list of messages — as the one text genloom trains on:
    a prompt of one user message, or an answer of one assistant message."""
    value = record.get(name)
    if not isinstance(value, list):
        return _field(path, lineno, record, name, allow_empty=name == "prompt")
    turns = _turns(path, lineno, value, name)
    if len(turns) != 1 or turns[0]["role"] != role:
        raise UserError(
            f"{path}:{lineno}: {name}: expected one {role} message (multi-turn preference data is not supported), "
            f"got roles {[t['role'] for t in turns]}"
        )
    return turns[0]["content"]


def read_preferences(path: str | Path, scrubber: Scrubber | None = None) -> list[PreferencePair]:
    """Preference pairs; chosen and rejected must both be non-empty and differ. Strings, or TRL's
    conversational form (a user message as the prompt, an assistant message as each answer)."""
    path = Path(path)
    pairs = []
    for lineno, record in read_jsonl(path, scrubber):
        prompt = _conversational(path, lineno, record, "prompt", "user")
        chosen = _conversational(path, lineno, record, "chosen", "assistant")
        rejected = _conversational(path, lineno, record, "rejected", "assistant")
        if chosen == rejected:
            raise UserError(
                f"{path}:{lineno}: 'chosen' and 'rejected' are identical; a pair needs two different answers"
            )
        pairs.append(PreferencePair(prompt, chosen, rejected))
    return pairs


def read_prompts(path: str | Path, scrubber: Scrubber | None = None) -> list[str]:
    """The non-empty `prompt` field of every record (PPO rollouts start from these); a string, or TRL's
    conversational form (one user message)."""
    path = Path(path)
    prompts = []
    for lineno, record in read_jsonl(path, scrubber):
        prompt = _conversational(path, lineno, record, "prompt", "user")
        if not prompt.strip():
            raise UserError(f"{path}:{lineno}: field 'prompt' is empty")
        prompts.append(prompt)
    return prompts


def bucket(text: str) -> int:
    """A stable number in [0, 1000) (sha1, not Python's salted hash)."""
    return int(hashlib.sha1(text.encode("utf-8")).hexdigest()[:8], 16) % 1000


def split_by_key(items: Sequence[Any], keys: Sequence[str], val_fraction: float) -> tuple[list[Any], list[Any]]:
    """(train, validation) by the hash bucket of each item's key; both sides non-empty when possible."""
    cut = round(val_fraction * 1000)
    train = [x for x, k in zip(items, keys, strict=True) if bucket(k) >= cut]
    val = [x for x, k in zip(items, keys, strict=True) if bucket(k) < cut]
    if not val and len(train) > 1:  # tiny files: keep one item for validation so metrics exist
        val = [train.pop()]
    if not train:
        train = list(val)
    return train, val


def hh_rlhf_pair(record: dict[str, Any]) -> PreferencePair:
    """An Anthropic HH-RLHF record as a pair: the shared prefix up to the last "\\n\\nAssistant:" is the
    prompt (its SOURCE.md describes the format)."""
    marker = "\n\nAssistant:"
    chosen, rejected = record["chosen"], record["rejected"]
    cut = chosen.rfind(marker) + len(marker)
    return PreferencePair(chosen[:cut], chosen[cut:], rejected[rejected.rfind(marker) + len(marker) :])


def write_jsonl(path: str | Path, records: Sequence[dict[str, Any]]) -> Path:
    """Write records one per line (used by the recipes to prepare tune data)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
