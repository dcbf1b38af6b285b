"""Turning a plain-text reply into Telegram messages: HTML rendering and splitting.

The assistant's reply text is plain: paragraphs separated by blank lines, list items as lines
starting with ``"- "``. Telegram shows at most 4096 characters a message (counted after the HTML
is parsed), so a long text is first split into plain chunks at paragraph, line, sentence or word
boundaries and only then is each chunk rendered, which keeps every tag inside one message.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable

__all__ = [
    "MESSAGE_LIMIT",
    "brand_pattern",
    "escape",
    "render_html",
    "shorten",
    "split_text",
    "utf16_len",
]

#: Longest chunk sent in one message, in UTF-16 code units: safely below Telegram's 4096.
MESSAGE_LIMIT = 4000

_BULLET = "• "

# How a too-long text is cut, coarsest first: (pattern to split at, what joins the pieces again).
_SEPARATORS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\n\s*\n"), "\n\n"),
    (re.compile(r"\n"), "\n"),
    (re.compile(r"(?<=[.!?])\s+"), " "),
    (re.compile(r"\s+"), " "),
)


def escape(value: object) -> str:
    """Escape ``value`` for Telegram HTML: only ``&``, ``<`` and ``>`` need it."""
    return html.escape(str(value), quote=False)


def utf16_len(text: str) -> int:
    """Length of ``text`` as Telegram counts it (UTF-16 code units)."""
    return len(text.encode("utf-16-le")) // 2


def split_text(text: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """Split plain ``text`` into chunks of at most ``limit`` UTF-16 units, in order.

    Cuts at paragraph boundaries where it can, then at line, sentence and word boundaries, and
    only cuts inside a word that alone is longer than ``limit``. Empty chunks are dropped.

    Args:
        text (str): The plain text of one reply.
        limit (int): The longest chunk allowed.

    RETURNS (list[str]): The chunks; joined with blank lines they read as the original.
    """
    return [chunk for chunk in _split(text.strip(), limit, 0) if chunk.strip()]


def _split(text: str, limit: int, level: int) -> list[str]:
    if utf16_len(text) <= limit:
        return [text]
    if level == len(_SEPARATORS):
        return _hard_cut(text, limit)
    pattern, joiner = _SEPARATORS[level]
    chunks: list[str] = []
    for part in pattern.split(text):
        if not part.strip():
            continue
        pieces = _split(part.strip(), limit, level + 1)
        # Only a part's first piece may join the chunk before it; the rest were split for a reason.
        if chunks and utf16_len(chunks[-1]) + utf16_len(joiner) + utf16_len(pieces[0]) <= limit:
            chunks[-1] = chunks[-1] + joiner + pieces[0]
            pieces = pieces[1:]
        chunks.extend(pieces)
    return chunks


def _hard_cut(text: str, limit: int) -> list[str]:
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    for char in text:
        width = utf16_len(char)
        if size + width > limit:
            chunks.append("".join(current))
            current, size = [], 0
        current.append(char)
        size += width
    if current:
        chunks.append("".join(current))
    return chunks


def brand_pattern(brands: Iterable[str]) -> re.Pattern[str] | None:
    """A pattern matching any of ``brands`` as whole words in escaped text, longest first.

    Args:
        brands (Iterable[str]): Product names as written in the knowledge base.

    RETURNS (re.Pattern | None): The pattern, or None when there are no names.
    """
    names = sorted({escape(brand) for brand in brands if brand.strip()}, key=len, reverse=True)
    if not names:
        return None
    alternatives = "|".join(re.escape(name) for name in names)
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)")


def render_html(text: str, brands: re.Pattern[str] | None = None) -> str:
    """Render one plain chunk as Telegram HTML.

    Everything is escaped; product names matched by ``brands`` are bold; list items
    (lines starting with ``"- "``) become bullet lines.

    Args:
        text (str): Plain text, at most one message long.
        brands (re.Pattern | None): From :func:`brand_pattern`; None bolds nothing.

    RETURNS (str): Text for ``parse_mode="HTML"``.
    """
    lines = []
    for line in text.split("\n"):
        stripped = line.lstrip()
        is_item = stripped.startswith("- ")
        body = escape(stripped[2:] if is_item else line)
        if brands is not None:
            body = brands.sub(lambda match: f"<b>{match.group(0)}</b>", body)
        lines.append(_BULLET + body if is_item else body)
    return "\n".join(lines)


def shorten(text: str, limit: int) -> str:
    """A short version of a reply: its first paragraphs up to ``limit``, and always its last one.

    The last paragraph of every reply is the reminder to talk to a healthcare provider, so it is
    kept even when paragraphs in the middle are left out.

    Args:
        text (str): The plain reply text.
        limit (int): The longest result wanted, in UTF-16 units (the last paragraph may exceed it).

    RETURNS (str): Plain text.
    """
    paragraphs = [part.strip() for part in re.split(r"\n\s*\n", text.strip()) if part.strip()]
    if len(paragraphs) <= 1 or utf16_len(text) <= limit:
        return "\n\n".join(paragraphs)
    last = paragraphs[-1]
    budget = limit - utf16_len(last) - 2
    kept = [paragraphs[0]]
    for paragraph in paragraphs[1:-1]:
        if sum(utf16_len(part) + 2 for part in kept) + utf16_len(paragraph) > budget:
            break
        kept.append(paragraph)
    if utf16_len(kept[0]) > max(budget, 0):
        kept[0] = split_text(kept[0], max(budget - 1, 40))[0] + "…"
    return "\n\n".join([*kept, last])
