"""Manufacturer names: the alias table (aggregator/data/manufacturers.toml plus the user's [aliases]),
acquisitions, and which manufacturers an advisory concerns. Pure."""

from __future__ import annotations

import contextlib
import re
import tomllib
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

from aggregator.models import Advisory


def word_set(text: str) -> frozenset[str]:
    return frozenset(text.split())


_CORPORATE = word_set(
    """
    inc incorporated ltd limited llc lp corp corporation co company ag gmbh sa se plc nv n v bv oy ab
    spa srl kg kk pty group holdings the
    """
)


def fold(text: str) -> str:
    """Accents and mojibake ("YhtymÃ¤") folded away; case kept."""
    if text.isascii():
        return text
    if "Ã" in text or "Â" in text:
        with contextlib.suppress(UnicodeEncodeError, UnicodeDecodeError):
            text = text.encode("latin-1").decode("utf-8")
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def name_key(text: str) -> str:
    """A company name for comparison: "Becton, Dickinson and Company (BD)" → "becton dickinson and company bd"."""
    text = fold(text).casefold().replace("&", " and ")
    text = re.sub(r"['’`]", "", text)
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text).split())


def core_key(key: str) -> str:
    """A name key without corporate suffixes: "hamilton medical ag" → "hamilton medical"."""
    return " ".join(w for w in key.split() if w not in _CORPORATE)


def contains_words(haystack: str, needle: str) -> bool:
    """Whole-word containment of name keys."""
    return bool(needle) and f" {needle} " in f" {haystack} "


@dataclass(frozen=True, slots=True, eq=False)
class ManufacturerAliases:
    """Canonical manufacturer names, the other names each goes by, and who acquired whom.

    `names` maps a canonical name to the other forms it is published under; `parents` maps a
    canonical name to the canonical name of the company that acquired it. Names compare case-,
    accent- and punctuation-blind, as whole words.
    """

    names: Mapping[str, tuple[str, ...]]
    parents: Mapping[str, str] = field(default_factory=dict)
    _by_key: dict[str, str] = field(init=False, repr=False)
    _pattern: re.Pattern[str] | None = field(init=False, repr=False)
    _children: dict[str, tuple[str, ...]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        by_key: dict[str, str] = {}
        for canonical, forms in self.names.items():
            for form in (canonical, *forms):
                key = name_key(form)
                if key:
                    by_key.setdefault(key, canonical)
        children: dict[str, list[str]] = {}
        for child, parent in self.parents.items():
            children.setdefault(parent, []).append(child)
        keys = sorted(by_key, key=len, reverse=True)
        pattern = re.compile(r"(?<![a-z0-9])(?:" + "|".join(map(re.escape, keys)) + r")(?![a-z0-9])") if keys else None
        object.__setattr__(self, "_by_key", by_key)
        object.__setattr__(self, "_pattern", pattern)
        object.__setattr__(self, "_children", {p: tuple(c) for p, c in children.items()})

    def canonical(self, name: str) -> str | None:
        """The canonical name for a manufacturer as someone wrote it, or None when it is not listed."""
        key = name_key(name)
        if key in self._by_key:
            return self._by_key[key]
        core = core_key(key)
        if core in self._by_key:
            return self._by_key[core]
        found = self._spans(key)
        if found:  # "Abbott Diabetes Care Inc." → the longest listed name inside it
            return max(found, key=lambda s: s[1] - s[0])[2]
        return None

    def find(self, text: str) -> frozenset[str]:
        """Canonical names of every listed manufacturer named (as a whole word run) in `text`."""
        return frozenset(c for _, _, c in self._spans(name_key(text)))

    def forms(self, canonical: str) -> tuple[str, ...]:
        """Every form a canonical name is published under, the canonical name first."""
        return (canonical, *self.names.get(canonical, ()))

    def descendants(self, canonical: str) -> frozenset[str]:
        """Companies `canonical` acquired, directly or through an acquisition."""
        found: set[str] = set()
        todo = list(self._children.get(canonical, ()))
        while todo:
            child = todo.pop()
            if child not in found:
                found.add(child)
                todo.extend(self._children.get(child, ()))
        return frozenset(found)

    def ancestors(self, canonical: str) -> frozenset[str]:
        """Companies that acquired `canonical`, directly or by acquiring its acquirer."""
        found: set[str] = set()
        current = self.parents.get(canonical)
        while current and current not in found:
            found.add(current)
            current = self.parents.get(current)
        return frozenset(found)

    def _spans(self, key: str) -> list[tuple[int, int, str]]:
        if self._pattern is None or not key:
            return []
        return [(m.start(), m.end(), self._by_key[m.group(0)]) for m in self._pattern.finditer(key)]


@lru_cache(maxsize=1)
def _data_file() -> dict[str, Any]:
    text = resources.files("aggregator").joinpath("data/manufacturers.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def load_aliases(extra: Mapping[str, Sequence[str]] | None = None) -> ManufacturerAliases:
    """The shipped alias table (aggregator/data/manufacturers.toml) plus the user's extra aliases.

    `extra` maps a manufacturer to more names for it (the config's ``[aliases]`` table). A key naming
    a listed company, by its canonical name or any alias, extends it; any other key adds a company.
    """
    data = _data_file()
    names: dict[str, list[str]] = {}
    parents: dict[str, str] = {}
    for canonical, entry in data.get("manufacturer", {}).items():
        names[canonical] = [str(a) for a in entry.get("aliases", [])]
        if entry.get("parent"):
            parents[canonical] = str(entry["parent"])
    base = ManufacturerAliases({c: tuple(f) for c, f in names.items()}, parents)
    for name, forms in (extra or {}).items():
        target = name
        if name not in names and name_key(name) in base._by_key:
            target = base._by_key[name_key(name)]  # "BD" = [...] extends Becton, Dickinson and Company
        names.setdefault(target, [])
        names[target].extend(f for f in (name, *forms) if f != target)
    return ManufacturerAliases({c: tuple(dict.fromkeys(f)) for c, f in names.items()}, parents)


def manufacturers_of(advisory: Advisory, aliases: ManufacturerAliases) -> frozenset[str]:
    """Canonical names of the manufacturers an advisory concerns, with the companies that acquired them.

    Vendors not in the alias table are returned as published (corporate suffixes dropped). Items
    without products and vendor contribute the listed manufacturers their title names.
    """
    found: set[str] = set()
    vendors = [p.vendor for p in advisory.products if p.vendor.strip()]
    if advisory.manufacturer:
        vendors.append(advisory.manufacturer)
    for vendor in vendors:
        listed = aliases.find(vendor)
        if listed:
            found.update(listed)
        elif core_key(name_key(vendor)):
            found.add(_display_core(vendor))
    if not vendors:
        found.update(aliases.find(advisory.title))
        for product in advisory.products:
            found.update(aliases.find(product.name[:300]))
    for canonical in list(found):
        found.update(aliases.ancestors(canonical))
    return frozenset(found)


def _display_core(vendor: str) -> str:
    words = re.sub(r"[(),.]+", " ", fold(vendor)).split()
    kept = [w for w in words if w.casefold() not in _CORPORATE]
    return " ".join(kept) or vendor.strip()
