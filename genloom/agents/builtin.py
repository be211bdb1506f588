"""The built-in tools: a calculator that evaluates arithmetic without `eval`, the current date and time,
and reading files inside one allowed folder.

- `calculator` parses the expression with `ast` and evaluates only numbers, + - * / // % **, unary signs,
  parentheses, the constants pi/e/tau and a few functions of `math`; exponents, factorials and results
  are bounded, so "9**9**9" or "factorial(10**6)" is an error instead of a hung process.
- `current_datetime` gives the time in an IANA time zone (`zoneinfo`).
- `file_reader(folder)` makes a `read_file(path)` tool that reads UTF-8 text under `folder` only: the path is
  resolved (symbolic links followed) and must stay inside the folder, and reads are size-bounded.
"""

from __future__ import annotations

import ast
import datetime as dt
import math
import operator
from collections.abc import Callable
from pathlib import Path
from typing import Any

from genloom.errors import UserError

MAX_EXPRESSION = 1000  # characters of a calculator expression
MAX_EXPONENT = 10_000  # |exponent| of a power
MAX_DIGITS = 10_000  # digits of an integer result
MAX_FACTORIAL = 1000
MAX_FILE_BYTES = 200_000  # characters read from one file

_BINARY: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}
_MATH = ("sqrt", "sin", "cos", "tan", "asin", "acos", "atan", "log", "log10", "log2", "exp", "floor", "ceil", "degrees")
_FUNCTIONS: dict[str, Callable[..., Any]] = {name: getattr(math, name) for name in (*_MATH, "radians", "hypot", "gcd")}
_FUNCTIONS.update({"abs": abs, "round": round, "min": min, "max": max})
_CONSTANTS = {"pi": math.pi, "e": math.e, "tau": math.tau}


def _check_size(value: Any) -> Any:
    if isinstance(value, int) and value.bit_length() > MAX_DIGITS * 3.33:
        raise ValueError(f"the result has more than {MAX_DIGITS} digits")
    return value


def _evaluate(node: ast.AST) -> Any:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body)
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.UAdd | ast.USub):
        value = _evaluate(node.operand)
        return -value if isinstance(node.op, ast.USub) else +value
    if isinstance(node, ast.BinOp):
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow):
            if abs(right) > MAX_EXPONENT or (isinstance(left, int) and isinstance(right, int) and right > 0
                                              and left.bit_length() * right > MAX_DIGITS * 3.33):  # fmt: skip
                raise ValueError(f"the power {left}**{right} is too large")
            return _check_size(left**right)
        op = _BINARY.get(type(node.op))
        if op is None:
            raise ValueError(f"the operator {type(node.op).__name__} is not allowed")
        return _check_size(op(left, right))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
        name = node.func.id
        args = [_evaluate(a) for a in node.args]
        if name == "factorial":
            if len(args) != 1 or not isinstance(args[0], int) or not 0 <= args[0] <= MAX_FACTORIAL:
                raise ValueError(f"factorial takes one integer from 0 to {MAX_FACTORIAL}")
            return math.factorial(args[0])
        if name in _FUNCTIONS:
            return _check_size(_FUNCTIONS[name](*args))
        raise ValueError(f"unknown function {name!r}; known: factorial, {', '.join(sorted(_FUNCTIONS))}")
    raise ValueError(f"{ast.dump(node)[:40]}... is not arithmetic")


def calculator(expression: str) -> float | int:
    """Evaluate an arithmetic expression exactly as written, e.g. "2 * (3 + 4) ** 2 / sqrt(16)".

    Args:
        expression: numbers, + - * / // % **, parentheses, pi, e, and sqrt, log, sin, cos, factorial, ...
    """
    if len(expression) > MAX_EXPRESSION:
        raise ValueError(f"the expression has {len(expression)} characters; at most {MAX_EXPRESSION}")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except (SyntaxError, RecursionError, MemoryError):
        raise ValueError(f"not an arithmetic expression: {expression!r}") from None
    try:
        return _evaluate(tree)  # type: ignore[no-any-return]
    except ZeroDivisionError:
        raise ValueError("division by zero") from None
    except OverflowError:
        raise ValueError("the result is too large") from None


def current_datetime(timezone: str = "UTC") -> str:
    """The current date and time (ISO 8601) in a time zone.

    Args:
        timezone: an IANA time zone name such as "UTC", "Europe/Paris" or "America/New_York".
    """
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {timezone!r}") from None
    return dt.datetime.now(zone).isoformat(timespec="seconds")


def file_reader(folder: str | Path) -> Callable[[str], str]:
    """A `read_file(path)` tool confined to `folder`."""
    root = Path(folder).expanduser().resolve()
    if not root.is_dir():
        raise UserError(f"--folder {folder}: not a directory")

    def read_file(path: str) -> str:
        """Read a UTF-8 text file from the allowed folder.

        Args:
            path: the file's path relative to the folder.
        """
        target = Path(path)
        if target.is_absolute() or "\x00" in path:
            raise ValueError("give a path relative to the allowed folder")
        resolved = (root / target).resolve()  # follows symbolic links: a link out of the folder is refused
        if not resolved.is_relative_to(root):
            raise ValueError(f"{path!r} is outside the allowed folder")
        if not resolved.is_file():
            raise ValueError(f"no file {path!r} in the allowed folder")
        with resolved.open("rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
        text = data[:MAX_FILE_BYTES].decode("utf-8", errors="replace")
        return text + ("\n[... truncated]" if len(data) > MAX_FILE_BYTES else "")

    return read_file


BUILTIN = ("calculator", "datetime", "files")  # the names `genloom agent --tool` takes


def builtin_tools(names: list[str], folder: str | Path | None = None) -> list[Callable[..., Any]]:
    """The built-in tools by name ("files" needs `folder`)."""
    out: list[Callable[..., Any]] = []
    for name in names:
        if name == "calculator":
            out.append(calculator)
        elif name == "datetime":
            out.append(current_datetime)
        elif name == "files":
            if folder is None:
                raise UserError("--tool files: give the folder it may read with --folder DIR")
            out.append(file_reader(folder))
        else:
            raise UserError(f"--tool {name}: unknown tool; built-in tools: {', '.join(BUILTIN)}")
    return out
