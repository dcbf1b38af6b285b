"""Answer templates: Jinja2 with StrictUndefined, rendering plain text.

Templates live in ``intents/data/responses``; this module gives them the
knowledge objects and a few helpers, and tidies the white space of the result.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from collections import ChainMap
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import lru_cache, partial
from pathlib import Path
from typing import Any, NamedTuple

import jinja2
from jinja2 import (
    Environment,
    FileSystemBytecodeCache,
    FileSystemLoader,
    StrictUndefined,
    Template,
    TemplateError,
)

from intents.catalog import Texts
from knowledge.cache import cache_key, entry_folder
from knowledge.loader import KnowledgeBase
from knowledge.schema import Condition, KnowledgeModel, Product, Source, Topic

__all__ = ["Rendered", "Renderer", "TemplateError", "UsedFact", "bytecode_folder"]


@dataclass
class Selection:
    """Products picked for a list answer, with a heading that says what was asked."""

    items: list[Product]
    heading: str
    label: str


_SPACES = re.compile(r"[ \t]{2,}")
_BLANK_LINES = re.compile(r"\n{3,}")


def _tidy(text: str) -> str:
    lines = [line.rstrip() for line in text.strip().splitlines()]
    text = "\n".join(lines)
    # Most answers have nothing to tidy; the substring tests find exactly what the patterns would.
    if "  " in text or "\t" in text:
        text = _SPACES.sub(" ", text)
    return _BLANK_LINES.sub("\n\n", text) if "\n\n\n" in text else text


def _join(items: list[str], word: str = "and") -> str:
    items = [i for i in items if i]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + f" {word} " + items[-1]


def _month_year(months: list[str], date: str | None) -> str:
    if not date:
        return ""
    parts = date.split("-")
    if len(parts) >= 2:
        return f"{months[int(parts[1]) - 1]} {parts[0]}"
    return parts[0]


class UsedFact(NamedTuple):
    """One sourced knowledge entry a template read, with the product, condition or topic it is of."""

    # A named tuple, not a frozen dataclass: one is made per sourced read, several per answer,
    # and a frozen dataclass sets each field through object.__setattr__.
    fact: KnowledgeModel
    owner: KnowledgeModel | None


@dataclass
class Rendered:
    """A rendered answer and what it rests on.

    Args:
        text (str): the answer.
        used (list[UsedFact]): every sourced entry (Fact, Approval, Maker...) the template read.
    """

    text: str
    used: list[UsedFact] = field(default_factory=list)


#: The entries read by the template being rendered now; None when nothing is being traced.
_reading: ContextVar[list[UsedFact] | None] = ContextVar("_reading", default=None)
_PLAIN = (str, int, float, bool, type(None), dt.date)
_OWNERS = (Product, Topic, Condition)


def _is_sourced(obj: object) -> bool:
    """A Fact-like entry: a knowledge model whose ``sources`` is a list of source ids."""
    # Settled by the model's type (a Fact's sources are always a list, a Product's a mapping):
    # asked once per type, not on every attribute a template reads.
    kind = type(obj)
    sourced = _SOURCED.get(kind)
    if sourced is None:
        sourced = _SOURCED[kind] = isinstance(obj, KnowledgeModel) and isinstance(
            getattr(obj, "sources", None), list
        )
    return sourced


_SOURCED: dict[type, bool] = {}


#: The plain types themselves, tested before isinstance: most values read are exactly one.
_PLAIN_TYPES = frozenset(_PLAIN)


def _track(value: Any, owner: KnowledgeModel | None) -> Any:
    if type(value) in _PLAIN_TYPES or isinstance(value, _PLAIN):
        return value
    return _Tracked(value, owner)


def _plain(value: Any) -> Any:
    return value._obj if isinstance(value, _Tracked) else value


class _Tracked:
    """A see-through wrapper for what a template reads: reading an attribute of a sourced entry
    (``p.side_effects.text``, ``a.change``, ``p.maker.name``) records that entry, so an answer's
    sources are those of the facts it shows, without any template having to say so. Everything
    else behaves like the wrapped object; Python helpers receive the unwrapped objects.
    """

    __slots__ = ("_obj", "_owner")

    # The slots are read directly (a slot is found before __getattr__ is ever asked) and the owner
    # is settled once: templates read a few dozen attributes per answer through these wrappers.
    def __init__(self, obj: Any, owner: KnowledgeModel | None) -> None:
        self._obj = obj
        self._owner = obj if isinstance(obj, _OWNERS) else owner

    def __getattr__(self, name: str) -> Any:
        obj = self._obj
        value = getattr(obj, name)
        if name != "sources" and _is_sourced(obj):
            reading = _reading.get()
            if reading is not None:
                reading.append(UsedFact(obj, self._owner))
        return _track(value, self._owner)

    def __getitem__(self, key: Any) -> Any:
        return _track(self._obj[_plain(key)], self._owner)

    def __iter__(self) -> Iterator[Any]:
        owner = self._owner
        return (_track(v, owner) for v in self._obj)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        result = self._obj(*[_plain(a) for a in args], **{k: _plain(v) for k, v in kwargs.items()})
        return _track(result, self._owner)

    def __len__(self) -> int:
        return len(self._obj)

    def __bool__(self) -> bool:
        return bool(self._obj)

    def __contains__(self, item: Any) -> bool:
        return _plain(item) in self._obj

    def __eq__(self, other: object) -> bool:
        return bool(self._obj == _plain(other))

    def __lt__(self, other: Any) -> bool:
        return bool(self._obj < _plain(other))

    def __hash__(self) -> int:
        return hash(self._obj)

    def __str__(self) -> str:
        return str(self._obj)

    def __repr__(self) -> str:
        return repr(self._obj)


def bytecode_folder(responses_dir: Path) -> Path | None:
    """Where jinja keeps the compiled templates of ``responses_dir``; None if it cannot be made.

    An entry of the ``templates`` cache keyed by every template's name and text and jinja's
    version: jinja checks each compiled template against its source itself, but only a new
    folder for an edited set lets the compiled templates of older sets be pruned as any cache's.
    """
    try:
        texts = [
            item for path in sorted(responses_dir.glob("*.j2")) for item in (path.name, path.read_bytes())
        ]
    except OSError:
        return None  # the loader reports unreadable templates; compiled ones are only not kept
    return entry_folder("templates", cache_key(*texts, libraries=[jinja2]))


class Renderer:
    """Renders an intent's template with the knowledge it needs.

    Args:
        responses_dir (Path): the folder holding ``<intent>.j2`` files.
        kb (KnowledgeBase): the knowledge base, offered to templates as ``kb``.
    """

    def __init__(
        self, responses_dir: Path, kb: KnowledgeBase, words: Texts, bytecode_dir: Path | None = None
    ) -> None:
        self.kb = kb
        self.words = words
        self.env = Environment(
            bytecode_cache=FileSystemBytecodeCache(str(bytecode_dir)) if bytecode_dir else None,
            loader=FileSystemLoader(str(responses_dir)),
            undefined=StrictUndefined,
            autoescape=False,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
            auto_reload=False,
            # A plain dict for the templates loaded by name: every answer that extends a base
            # template loads it again, and jinja's LRU cache takes a lock and reorders a deque
            # on each hit. The templates are the catalog's few files, so it stays small.
            cache_size=-1,
        )
        self.env.filters.update(join_words=_join, month_year=partial(_month_year, words.months))
        self.env.globals.update(
            kb=kb,
            kind_words=words.kind_words,
            source_words=words.source_words,
            treats=self.treats,
            sources_of=self.sources_of,
            comparison=kb.comparison,
            topic=lambda tid: kb.topics.get(tid),
            condition=lambda cid: kb.conditions.get(cid),
            select_products=self.select_products,
            short_use=self.short_use,
            recent_changes=self.recent_changes,
            # The day "what's new" counts back from; None is today. Tests pass a fixed date.
            today=None,
        )
        # Whose entry each sourced entry is, so that one reached without its owner (a row of
        # "what's new") still resolves the owner's own source ids.
        self._owners: dict[int, Product | Topic | Condition] = {}
        # The owner kinds themselves, not their common base: only these carry their own sources.
        owners: list[Product | Topic | Condition] = [
            *kb.products.values(),
            *kb.topics.values(),
            *kb.conditions.values(),
        ]
        for owner in owners:
            for name in type(owner).model_fields:
                value = getattr(owner, name)
                for entry in value if isinstance(value, list) else [value]:
                    if _is_sourced(entry):
                        self._owners.setdefault(id(entry), owner)
        # Helpers and ``kb`` are wrapped so that what they return is traced like the context.
        traced = ("kb", "treats", "sources_of", "comparison", "topic", "condition", "select_products")
        for name in (*traced, "short_use", "recent_changes"):
            self.env.globals[name] = _Tracked(self.env.globals[name], None)
        # Compiled once each: a template is looked up by name on every answer, and a suggestion's
        # inline template by its text. Bounded, though both sets are fixed by the catalog.
        self._template = lru_cache(maxsize=256)(self._compiled)
        self._inline = lru_cache(maxsize=2048)(self._compiled_inline)
        # The shared macros (reminder, facts, asking back) are built once and offered as `m`.
        self.env.globals["m"] = self.env.get_template("_macros.j2").module

    def treats(self, condition: Condition | str) -> list[Product]:
        """Listed products approved for a condition."""
        cid = condition if isinstance(condition, str) else condition.id
        return self.kb.products_for_condition(cid)

    def recent_changes(self, months: int = 12, today: dt.date | None = None) -> list[Any]:
        """Approvals, label changes and withdrawals of the last ``months`` months, newest first.

        Args:
            months (int): how far back to look.
            today (date | None): the day to count back from; ``date.today()`` when not given.

        RETURNS (list): ``(date, product, approval)`` rows; family members are left out, since
            their family product carries the shared history.
        """
        day = today or dt.date.today()
        year, month = divmod(day.year * 12 + day.month - 1 - months, 12)
        since = f"{year:04d}-{month + 1:02d}-{day.day:02d}"
        rows = [
            (a.date, p, a)
            for p in self.kb.products.values()
            if p.family is None
            for a in p.approvals
            # A date given only as YYYY-MM counts from the start of its month.
            if a.date >= since[: len(a.date)] and a.date <= day.isoformat()
        ]
        return sorted(rows, key=lambda row: (row[0], row[1].brand), reverse=True)

    def short_use(self, product: Product) -> str:
        """A few words on what a product is for, from the names of its conditions."""
        names = [self.kb.conditions[c].name for c in product.conditions if c in self.kb.conditions]
        if not names:
            return self.words.kind_words[product.kind]
        shown = names[:3] + ([self.words.other_conditions] if len(names) > 3 else [])
        return _join(shown)

    def select_products(
        self, topics: list[Topic], groups: list[Any], conditions: list[Condition]
    ) -> Selection:
        """Listed products filtered by the kinds, technologies and condition groups asked about."""
        items = self.kb.listed_products()
        # A kind of therapy (gene therapy, cell therapy) is the kinds its topic's members have, as
        # the knowledge base defines them: a cell-based gene therapy is both.
        by_kind = [t for t in topics if t.members is not None and t.members.kinds]
        kinds = {k for t in by_kind if t.members is not None for k in t.members.kinds}
        if kinds:
            items = [p for p in items if p.kind in kinds]
        techs = [t for t in topics if t not in by_kind and any(t.id in p.technologies for p in items)]
        if techs:
            items = [p for p in items if any(t.id in p.technologies for t in techs)]
        # "Which cell therapies use donor cells?": whose cells, as a class defines it.
        sources = {s for t in topics if t.members is not None for s in t.members.cell_sources}
        if sources:
            items = [p for p in items if p.cell_source in sources]
        wanted = self.kb.conditions_meant([c.id for c in conditions], [g.id for g in groups])
        if groups or conditions:
            items = [p for p in items if wanted & set(p.conditions)]
        what = _join([t.name for t in by_kind] + [t.name for t in techs])
        made = _join([self.words.source_words[s] for s in sorted(sources)])
        where = _join([g.name for g in groups] + [c.name for c in conditions])
        label = _join([x for x in (what, made, where) if x]) or self.words.list_everything
        # "tissue-engineered products" is already products: not "... products products".
        kind = (
            (what if what.endswith("products") else f"{what} products")
            if what
            else self.words.list_everything
        )
        heading = " ".join(
            x
            for x in (
                self.words.list_heading.format(what=kind),
                made,
                self.words.list_heading_for.format(where=where) if where else "",
            )
            if x
        )
        return Selection(items=items, heading=heading, label=label)

    def sources_of(self, item: Product | Topic | Condition, fields: list[str] | None = None) -> list[Any]:
        """Distinct sources behind an item's facts (or just the named fields), in order."""
        seen: dict[str, Any] = {}
        names = fields or [
            n for n in type(item).model_fields if n not in ("sources", "approvals", "aliases", "related")
        ]
        facts: list[Any] = []
        for name in names:
            value = getattr(item, name, None)
            if isinstance(value, list):
                facts += [v for v in value if hasattr(v, "sources")]
            elif value is not None and hasattr(value, "sources"):
                facts.append(value)
        for fact in facts:
            for key in fact.sources:
                source = self.kb.source(key, item)
                if source is not None:
                    seen.setdefault(source.title, source)
        return list(seen.values())

    def warm(self, templates: list[str], inline: list[str]) -> None:
        """Compile every template on a background thread, so that no person waits for a first
        compilation and the first answer does not wait for templates it does not use (about half a
        second on a first start, before compiled templates are cached on disk)."""
        threading.Thread(target=self._compile, args=(templates, inline), daemon=True).start()

    def _compile(self, templates: list[str], inline: list[str]) -> None:
        for name in templates:
            self._template(name)
        for source in inline:
            self._inline(source)

    def _compiled(self, name: str) -> Template:
        return self._plain_globals(self.env.get_template(f"{name}.j2"))

    def _compiled_inline(self, source: str) -> Template:
        return self._plain_globals(self.env.from_string(source))

    def _plain_globals(self, template: Template) -> Template:
        """The template reads the environment's globals themselves, not a ChainMap over them.

        Jinja copies a template's globals into every new context; copying a ChainMap goes key
        by key in Python, a tenth of a template's render. A template made without globals of its
        own has an empty first map, so the environment's dict holds exactly what it reads.
        """
        chain = template.globals
        if isinstance(chain, ChainMap) and chain.maps[-1] is self.env.globals and not any(chain.maps[:-1]):
            template.globals = self.env.globals
        return template

    def render(self, template: str, **context: Any) -> str:
        """Render ``<template>.j2`` and tidy its white space."""
        return self.render_traced(template, **context).text

    def render_traced(self, template: str, **context: Any) -> Rendered:
        """Render ``<template>.j2`` and record every sourced entry it reads (see ``_Tracked``)."""
        compiled = self._template(template)
        used: list[UsedFact] = []
        token = _reading.set(used)
        try:
            text = compiled.render(**{k: _track(v, None) for k, v in context.items()})
        finally:
            _reading.reset(token)
        return Rendered(text=_tidy(text), used=used)

    def sources_used(self, used: list[UsedFact]) -> tuple[list[Source], str | None]:
        """The distinct sources of the entries used, FDA's own pages first, and the oldest
        ``last_reviewed`` of the products they belong to (None when no product fact was used)."""
        found: dict[tuple[str, str | None, str], Source] = {}
        for item in used:
            owner = item.owner if isinstance(item.owner, _OWNERS) else self._owners.get(id(item.fact))
            for key in getattr(item.fact, "sources", []):
                source = self.kb.source(key, owner)
                if source is not None:
                    found.setdefault((source.title, source.url, source.date), source)
        # FDA's own pages and labels are the most authoritative, then the rest in the order used.
        ordered = sorted(found.values(), key=lambda s: 0 if s.url and "fda.gov" in s.url else 1)
        owners = [u.owner if isinstance(u.owner, _OWNERS) else self._owners.get(id(u.fact)) for u in used]
        reviewed = [o.last_reviewed for o in owners if isinstance(o, Product)]
        return ordered, (min(reviewed) if reviewed else None)

    def reminder(self) -> str:
        """The reminder every substantive answer ends with, so front ends can set it apart."""
        macros: Any = self.env.globals["m"]
        return _tidy(str(macros.reminder()))

    def render_string(self, source: str, **context: Any) -> str:
        """Render a short inline template, such as a suggestion."""
        return _tidy(self._inline(source).render(**context))
