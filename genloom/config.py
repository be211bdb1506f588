"""Typed configs: dataclasses in, TOML out, `--set section.key=value` overrides, errors that teach.

Every component has one dataclass whose fields carry defaults and a comment with the unit or the why
(nanoGPT's `GPTConfig`, litgpt's `args.py`). This module only knows how to turn plain dicts (from a
TOML file, a preset or the command line) into those dataclasses and back, so a saved `config.toml` is
complete, human-editable and enough to rebuild a run.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import types
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import tomli_w

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, from PyPI
    import tomli as tomllib

from genloom.errors import UserError

T = TypeVar("T")

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def type_name(annotation: Any) -> str:
    """A short human name for a field type, as shown in error messages."""
    origin = get_origin(annotation)
    if origin is Literal:
        return " | ".join(repr(a) for a in get_args(annotation))
    if origin in (Union, types.UnionType):
        return " | ".join(type_name(a) for a in get_args(annotation))
    if origin is tuple:
        args = get_args(annotation)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {type_name(args[0])}"
        return "tuple of " + ", ".join(type_name(a) for a in args)
    if annotation is type(None):
        return "none"
    return getattr(annotation, "__name__", str(annotation))


def coerce(value: Any, annotation: Any, where: str) -> Any:
    """Convert a TOML or command-line value to `annotation`, or raise `UserError` naming `where`.

    Strings are accepted for every scalar type because `--set` values arrive as text.
    """
    origin = get_origin(annotation)
    bad = UserError(f"{where}: expected {type_name(annotation)}, got {value!r}")
    if origin is Literal:
        choices = get_args(annotation)
        if value in choices:
            return value
        raise UserError(f"{where}: expected one of {', '.join(map(repr, choices))}, got {value!r}")
    if origin in (Union, types.UnionType):
        args = get_args(annotation)
        if type(None) in args and (value is None or (isinstance(value, str) and value.lower() in ("none", "null"))):
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(value, arg, where)
            except UserError:
                pass
        raise bad
    if origin is tuple:
        items = value.split(",") if isinstance(value, str) else value
        args = get_args(annotation)
        if len(args) == 2 and args[1] is Ellipsis:  # tuple[X, ...]: any length ("" or [] is empty)
            if isinstance(value, str) and value.strip() in ("", "[]"):
                return ()
            if not isinstance(items, (list, tuple)):
                raise bad
            return tuple(coerce(v.strip() if isinstance(v, str) else v, args[0], where) for v in items)
        if not isinstance(items, (list, tuple)) or len(items) != len(args):
            raise bad
        return tuple(
            coerce(v.strip() if isinstance(v, str) else v, a, where) for v, a in zip(items, args, strict=False)
        )
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
            return value.lower() in _TRUE
        raise bad
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return int(value.replace("_", ""))
            except ValueError:
                raise bad from None
        raise bad
    if annotation is float:
        number: float | None = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                raise bad from None
        if number is None:
            raise bad
        if not math.isfinite(number):  # NaN passes every `x <= 0` check; inf trains to NaN weights
            raise UserError(f"{where}: expected a finite number, got {value!r}")
        return number
    if annotation is str:
        if isinstance(value, str):
            return value
        raise bad
    raise TypeError(f"config field type {annotation!r} is not supported")  # a bug in a Config, not user input


def build(cls: type[T], data: dict[str, Any], where: str = "") -> T:
    """Build dataclass `cls` from a nested dict, checking names and types of every key."""
    if not isinstance(data, dict):
        raise UserError(f"{where or 'config'}: expected a table of settings, got {data!r}")
    hints = get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else key
        if key not in known:
            valid = ", ".join(f"{where}.{k}" if where else k for k in known)
            raise UserError(f"unknown config key {path!r}; valid keys: {valid}")
        annotation = hints[key]
        if dataclasses.is_dataclass(annotation):
            kwargs[key] = build(annotation, value, path)  # type: ignore[arg-type]
        else:
            kwargs[key] = coerce(value, annotation, path)
    try:
        return cls(**kwargs)
    except ValueError as e:  # __post_init__ checks name the field; add where it sits
        raise UserError(f"{where + ': ' if where else ''}{e}") from None


def to_dict(obj: Any) -> dict[str, Any]:
    """A dataclass as a TOML-ready dict (tuples become lists, None values are left out)."""

    def clean(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items() if v is not None}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        return value

    return clean(dataclasses.asdict(obj))


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Recursively merge `update` into a copy of `base` (tables merge, values replace)."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def parse_sets(sets: list[str]) -> dict[str, Any]:
    """Turn `["model.n_layer=6", "train.lr=3e-4"]` into a nested dict of raw string values."""
    out: dict[str, Any] = {}
    for item in sets:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set {item!r}: expected section.key=value, e.g. --set model.n_layer=6")
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise UserError(f"--set {item!r}: {part!r} is a value, not a section")
        node[parts[-1]] = value.strip()
    return out


def read_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML file, with a one-line error naming the file on any problem."""
    path = Path(path)
    if path.exists() and not path.is_file():
        raise UserError(f"{path}: not a file (expected a TOML config file)")
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise UserError(f"{path}: config file not found") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:  # binary content fails to decode first
        raise UserError(f"{path}: not valid TOML ({str(e).splitlines()[0]})") from None
    except OSError as e:
        raise UserError(f"{path}: cannot read it ({e.strerror or e})") from None


def read_json_object(path: str | Path, missing_ok: bool = True) -> dict[str, Any]:
    """A JSON file that must hold an object ({} if absent and `missing_ok`); one line naming it otherwise."""
    path = Path(path)
    if missing_ok and not path.exists():
        return {}
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise UserError(f"{path}: not found") from None
    except OSError as e:  # a directory, unreadable, ...
        raise UserError(f"{path}: cannot read it ({e.strerror or e})") from None
    except ValueError as e:  # JSONDecodeError and UnicodeDecodeError (binary content) alike
        raise UserError(f"{path}: not valid JSON ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def check_int_fields(raw: dict[str, Any], keys: tuple[str, ...], where: str) -> None:
    """Each of `keys` present in `raw` (a foreign config.json) must be a JSON integer: a string or float
    size would otherwise fail deep inside a model's constructor, or be silently rounded."""
    for key in keys:
        value = raw.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise UserError(f"{where}: {key} must be an integer, got {value!r}")


def dump_toml(data: dict[str, Any], header: str = "") -> str:
    """Serialize a config dict as TOML text with an optional comment header."""
    text = tomli_w.dumps(data)
    if header:
        text = "".join(f"# {line}\n" for line in header.splitlines()) + "\n" + text
    return text
