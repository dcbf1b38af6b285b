"""Answer templates: Jinja2 with StrictUndefined, rendering plain text.

Templates live in ``intents/data/responses``; this module gives them the
knowledge objects and a few helpers, and tidies the white space of the result.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemBytecodeCache, FileSystemLoader, StrictUndefined, TemplateError

from knowledge.loader import KnowledgeBase
from knowledge.schema import Condition, Product, Topic

__all__ = ["Renderer", "TemplateError"]

KIND_WORDS = {
    "cell therapy": "a cell therapy",
    "gene therapy": "a gene therapy",
    "cell-based gene therapy": "a cell-based gene therapy",
}
SOURCE_WORDS = {
    "own": "made from the patient's own cells",
    "donor": "made from donor cells (cells from another person)",
    "none": "not made from cells",
}


#: Topics that name a kind of product, and the kinds they cover.
KIND_TOPICS = {
    "cell-therapy": ("cell therapy",),
    "gene-therapy": ("gene therapy", "cell-based gene therapy"),
    "cell-based-gene-therapy": ("cell-based gene therapy",),
}


@dataclass
class Selection:
    """Products picked for a list answer, with a heading that says what was asked."""

    items: list[Product]
    heading: str
    label: str


def _tidy(text: str) -> str:
    lines = [line.rstrip() for line in text.strip().splitlines()]
    text = "\n".join(lines)
    text = re.sub(r"[ \t]{2,}", " ", text)
    return re.sub(r"\n{3,}", "\n\n", text)


def _join(items: list[str], word: str = "and") -> str:
    items = [i for i in items if i]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + f" {word} " + items[-1]


def _month_year(date: str | None) -> str:
    months = [
        "January", "February", "March", "April", "May", "June",
        "July", "August", "September", "October", "November", "December",
    ]  # fmt: skip
    if not date:
        return ""
    parts = date.split("-")
    if len(parts) >= 2:
        return f"{months[int(parts[1]) - 1]} {parts[0]}"
    return parts[0]


def _bytecode_cache(folder: Path | None) -> FileSystemBytecodeCache | None:
    """Compiled templates kept on disk between runs; none if the folder cannot be made."""
    if folder is None:
        return None
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return FileSystemBytecodeCache(str(folder))


class Renderer:
    """Renders an intent's template with the knowledge it needs.

    Args:
        responses_dir (Path): the folder holding ``<intent>.j2`` files.
        kb (KnowledgeBase): the knowledge base, offered to templates as ``kb``.
    """

    def __init__(self, responses_dir: Path, kb: KnowledgeBase, bytecode_dir: Path | None = None) -> None:
        self.kb = kb
        self.env = Environment(
            bytecode_cache=_bytecode_cache(bytecode_dir),
            loader=FileSystemLoader(str(responses_dir)),
            undefined=StrictUndefined,
            autoescape=False,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
            auto_reload=False,
        )
        self.env.filters.update(join_words=_join, month_year=_month_year)
        self.env.globals.update(
            kb=kb,
            kind_words=KIND_WORDS,
            source_words=SOURCE_WORDS,
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
        self._cache: dict[str, Any] = {}
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
            return KIND_WORDS[product.kind]
        shown = names[:3] + (["other conditions"] if len(names) > 3 else [])
        return _join(shown)

    def select_products(
        self, topics: list[Topic], groups: list[Any], conditions: list[Condition]
    ) -> Selection:
        """Listed products filtered by the kinds, technologies and condition groups asked about."""
        items = self.kb.listed_products()
        kinds = {k for t in topics for k in KIND_TOPICS.get(t.id, ())}
        if kinds:
            items = [p for p in items if p.kind in kinds]
        techs = [t for t in topics if t.id not in KIND_TOPICS and any(t.id in p.technologies for p in items)]
        if techs:
            items = [p for p in items if any(t.id in p.technologies for t in techs)]
        wanted = {c.id for g in groups for c in self.kb.conditions_under(g.id)} | {c.id for c in conditions}
        if groups or conditions:
            items = [p for p in items if wanted & set(p.conditions)]
        what = _join([t.name for t in topics if t.id in KIND_TOPICS] + [t.name for t in techs])
        where = _join([g.name for g in groups] + [c.name for c in conditions])
        label = _join([x for x in (what, where) if x]) or "cell and gene therapies"
        heading = f"FDA-approved {what + ' products' if what else 'cell and gene therapies'}"
        if where:
            heading += f" for {where}"
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
        """Compile every template now, so that no person waits for a first compilation."""
        for name in templates:
            self._cache.setdefault(name, self.env.get_template(f"{name}.j2"))
        for source in inline:
            self._cache.setdefault("#" + source, self.env.from_string(source))

    def render(self, template: str, **context: Any) -> str:
        """Render ``<template>.j2`` and tidy its white space."""
        compiled = self._cache.get(template)
        if compiled is None:
            compiled = self._cache[template] = self.env.get_template(f"{template}.j2")
        return _tidy(compiled.render(**context))

    def render_string(self, source: str, **context: Any) -> str:
        """Render a short inline template, such as a suggestion."""
        compiled = self._cache.get("#" + source)
        if compiled is None:
            compiled = self._cache["#" + source] = self.env.from_string(source)
        return _tidy(compiled.render(**context))
