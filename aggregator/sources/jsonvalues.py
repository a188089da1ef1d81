"""Total accessors for untrusted JSON and the text shaping the JSON sources share. Contains no business logic."""

from __future__ import annotations

import json
import re
from typing import Any

_SPACES_RE = re.compile(r"[ \t\f\v]+")
_BLANKS_RE = re.compile(r"\n\s*\n+")


def load_object(text: str | None) -> dict[str, Any]:
    """A stored JSON object (a poller's cursor); missing, unreadable or not an object gives {}."""
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return as_dict(value)


def as_dict(value: object) -> dict[str, Any]:
    """`value` if it is an object, else an empty one (publishers put lists, nulls and strings anywhere)."""
    return value if isinstance(value, dict) else {}


def as_list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def as_str(value: object) -> str:
    """A stripped string; numbers as text (ids such as cfres_id may come as numbers); anything else empty."""
    if isinstance(value, bool):
        return ""
    if isinstance(value, int):
        return str(value)
    return value.strip() if isinstance(value, str) else ""


def opt_str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def fold_spaces(text: str) -> str:
    """Runs of spaces folded, lines kept (model lists are one per line), blank-line runs made one."""
    lines = (_SPACES_RE.sub(" ", line).strip() for line in text.splitlines())
    return _BLANKS_RE.sub("\n\n", "\n".join(lines)).strip()


def cap(text: str, limit: int) -> str:
    """At most `limit` characters, cut at a word boundary when one is near, marked with an ellipsis."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit * 0.8 else cut).rstrip() + "…"
