"""The words of the Telegram front end: ``bot/data/telegram.yaml``, validated at start-up.

Every text a person sees in Telegram lives in that file; this module checks its shape (each
placeholder present, only the HTML tags Telegram allows) and fills placeholders safely.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable
from datetime import date
from functools import partial
from pathlib import Path
from typing import Annotated, TypeAlias, get_args

from pydantic import AfterValidator, Field, field_validator

from bot.telegram.format import escape
from knowledge.datafile import DataModel, load_validated
from knowledge.schema import Kind

__all__ = [
    "COMMANDS",
    "KINDS",
    "TEXTS_PATH",
    "InlineTexts",
    "ProductTexts",
    "SourcesTexts",
    "Texts",
    "fill_html",
    "human_date",
    "load_texts",
    "plain_text",
]

TEXTS_PATH = Path(__file__).parents[1] / "data" / "telegram.yaml"
#: The bot's commands, in the order of its menu.
COMMANDS = ("start", "help", "products", "whatsnew", "about", "privacy", "reset", "forget")
KINDS: tuple[str, ...] = get_args(Kind)


# ---------------------------------------------------------------------------------------------
# Texts


_ALLOWED_TAGS = ("b", "i", "u", "s", "code")
_TAG = re.compile(r"<(/?)([a-z]+)>")
_ENTITY = re.compile(r"&(?:amp|lt|gt|quot);")


def _check_text(value: str, allowed: frozenset[str], is_html: bool) -> str:
    try:
        used = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
    except ValueError as err:
        raise ValueError(f"braces do not pair up ({err}); write {{{{ and }}}} for a literal brace") from None
    unknown = sorted(used - allowed)
    if unknown:
        known = ", ".join(f"{{{name}}}" for name in sorted(allowed)) or "none"
        raise ValueError(f"unknown placeholder {{{unknown[0]}}}; this text may use: {known}")
    if is_html:
        _check_html(value)
    return value


def _check_html(value: str) -> None:
    open_tags: list[str] = []
    for match in _TAG.finditer(value):
        closing, tag = match.groups()
        if tag not in _ALLOWED_TAGS:
            raise ValueError(f"tag <{tag}> is not allowed; use {', '.join(f'<{t}>' for t in _ALLOWED_TAGS)}")
        if not closing:
            open_tags.append(tag)
        elif not open_tags or open_tags.pop() != tag:
            raise ValueError(f"</{tag}> does not close the tag before it")
    if open_tags:
        raise ValueError(f"<{open_tags[-1]}> is never closed")
    rest = _ENTITY.sub("", _TAG.sub("", value))
    for char in "<>&":
        if char in rest:
            raise ValueError(f"write {char!r} as {escape(char)!r}")


def _checker(*placeholders: str, is_html: bool = True) -> Callable[[str], str]:
    return partial(_check_text, allowed=frozenset(placeholders), is_html=is_html)


# The kinds of text: each checks its placeholders and, for HTML, its tags.
Html: TypeAlias = Annotated[str, Field(min_length=1), AfterValidator(_checker())]
Plain: TypeAlias = Annotated[str, Field(min_length=1), AfterValidator(_checker(is_html=False))]
UsernameHtml: TypeAlias = Annotated[str, Field(min_length=1), AfterValidator(_checker("bot_username"))]
BrandPlain: TypeAlias = Annotated[str, Field(min_length=1), AfterValidator(_checker("brand", is_html=False))]
KindHtml: TypeAlias = Annotated[str, Field(min_length=1), AfterValidator(_checker("kind"))]
AboutHtml: TypeAlias = Annotated[str, Field(min_length=1), AfterValidator(_checker("count", "reviewed"))]
DateHtml: TypeAlias = Annotated[str, Field(min_length=1), AfterValidator(_checker("date"))]
RangeHtml: TypeAlias = Annotated[str, Field(min_length=1), AfterValidator(_checker("oldest", "newest"))]
MinutesHtml: TypeAlias = Annotated[str, Field(min_length=1), AfterValidator(_checker("minutes"))]
SourceHtml: TypeAlias = Annotated[str, Field(min_length=1), AfterValidator(_checker("title", "site", "date"))]
UnlinkedSourceHtml: TypeAlias = Annotated[str, Field(min_length=1), AfterValidator(_checker("title", "date"))]


class ProductTexts(DataModel):
    """Texts of the /products browser."""

    choose_kind: Html
    kinds: dict[str, Plain]
    choose_product: KindHtml
    back: Plain
    question: BrandPlain

    @field_validator("kinds")
    @classmethod
    def _known_kinds(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(KINDS))
        if unknown:
            raise ValueError(f"unknown kind {unknown[0]!r}; kinds are {', '.join(KINDS)}")
        return value


class SourcesTexts(DataModel):
    """Texts of the "Sources" button under an answer and of the list it shows."""

    button: Annotated[Plain, Field(max_length=40)]
    heading: Html
    item: SourceHtml
    item_no_link: UnlinkedSourceHtml
    reviewed: DateHtml


class InlineTexts(DataModel):
    """Texts of inline mode (``@bot question`` in any chat)."""

    open_bot: Plain
    product_question: BrandPlain
    footer: UsernameHtml


class Texts(DataModel):
    """Every text of the Telegram front end, as loaded from ``bot/data/telegram.yaml``."""

    commands: dict[str, Annotated[str, Field(min_length=3, max_length=256)]]
    start: Html
    start_examples: list[Annotated[Plain, Field(max_length=120)]] = Field(min_length=1, max_length=8)
    help: UsernameHtml
    products: ProductTexts
    about: AboutHtml
    reviewed_one: DateHtml
    reviewed_range: RangeHtml
    privacy: MinutesHtml
    privacy_saved: Html
    privacy_shared: Html
    whats_new_question: Annotated[Plain, Field(max_length=120)]
    sources: SourcesTexts
    reset_done: Html
    forget_done: Html
    please_type: Html
    please_ask_again: Html
    unknown_command: Html
    mention_only: UsernameHtml
    slow_down: Html
    error: Html
    inline: InlineTexts

    @field_validator("commands")
    @classmethod
    def _every_command(cls, value: dict[str, str]) -> dict[str, str]:
        missing = [name for name in COMMANDS if name not in value]
        extra = sorted(set(value) - set(COMMANDS))
        if missing or extra:
            raise ValueError(f"commands must be exactly {', '.join(COMMANDS)}")
        return value


def load_texts(path: Path = TEXTS_PATH) -> Texts:
    """Load and check the Telegram texts.

    Args:
        path (Path): The YAML file.

    RETURNS (Texts): The validated texts.

    Raises:
        DataError: The file is missing, is not YAML, or breaks the schema; every problem is
            reported as ``file: loc.path: message``, the file named relative to its folder.
    """
    return load_validated(path, path.parent, Texts)


def fill_html(template: str, **values: object) -> str:
    """Fill an HTML template's placeholders with escaped values."""
    return template.format(**{name: escape(value) for name, value in values.items()})


def plain_text(template_html: str) -> str:
    """An HTML text as plain text (for callback answers, which take no markup)."""
    return (
        re.sub(r"<[^>]+>", "", template_html).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    )


def human_date(value: str) -> str:
    """'2026-05-01' -> 'May 1, 2026' (also 'YYYY-MM' and 'YYYY')."""
    parts = [int(part) for part in value.split("-")]
    if len(parts) == 3:
        day = date(*parts)
        return f"{day:%B} {day.day}, {day.year}"
    if len(parts) == 2:
        return f"{date(parts[0], parts[1], 1):%B %Y}"
    return str(parts[0])
