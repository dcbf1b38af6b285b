"""Terminal output: replies laid out with rich on a terminal, plain text everywhere else.

On a terminal, text wraps at word boundaries to the terminal's width, brand names are bold,
headings stand out, suggestions and did-you-mean options are numbered, the reminder to talk to
a healthcare provider is dimmed and an urgent reply is red. ``NO_COLOR`` (any value) keeps the
layout without any colour or style; output that is not a terminal (a pipe, a file) is the
reply's own plain text, unwrapped.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.status import Status

__all__ = ["Layout", "Progress", "Screen", "is_terminal", "wants_plain"]

#: A line that introduces what follows it ("Side effects and risks of Kymriah:").
_HEADING_WORDS = 12
_ITEM = re.compile(r"^(\s*)([-•*]|\d+[.)])\s+(.*)$")


def is_terminal(stream: TextIO) -> bool:
    """Whether ``stream`` is an interactive terminal."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or not a real stream
        return False


def wants_plain() -> bool:
    """Whether the person asked for no colour (https://no-color.org: any non-empty value)."""
    return bool(os.environ.get("NO_COLOR")) or os.environ.get("TERM") == "dumb"


@dataclass(frozen=True)
class Layout:
    """What a front end shows for one reply, before any styling.

    Attributes:
        text (str): the reply's text.
        options (list[str]): numbered choices after the text (suggestions or did-you-mean).
        heading (str | None): the line above the options; None for none.
        urgent (bool): the reply tells the person to seek urgent care.
        echo (str | None): the question asked for them (a numbered pick), shown above the reply.
    """

    text: str
    options: Sequence[str] = ()
    heading: str | None = None
    urgent: bool = False
    echo: str | None = None

    def plain(self, numbered: bool = True) -> str:
        """The layout as plain text: echo, text, then the numbered options."""
        parts = [f"> {self.echo}"] if self.echo and not self.urgent else []
        parts.append(self.text)
        if self.options and numbered and not self.urgent:
            lines = [self.heading] if self.heading else []
            lines += [f"  {i}. {option}" for i, option in enumerate(self.options, 1)]
            parts.append("\n".join(lines))
        return "\n\n".join(parts)


class Screen:
    """Writes layouts and messages to one stream, styled only where that helps a reader.

    Args:
        stream (TextIO): where to write (standard output).
        brands (Iterable[str]): product names to show in bold.
        reminder (str): the closing reminder of answers, shown dimmed.
        styled (bool | None): force styling on or off (and lay out as for a terminal); by
            default on for a terminal without ``NO_COLOR``.
        width (int | None): the width to wrap at (and lay out as for a terminal); by default
            the terminal's.
    """

    def __init__(
        self,
        stream: TextIO,
        brands: Iterable[str] = (),
        reminder: str = "",
        styled: bool | None = None,
        width: int | None = None,
    ) -> None:
        self.stream = stream
        self.terminal = is_terminal(stream)
        self.styled = (self.terminal and not wants_plain()) if styled is None else styled
        self.reminder = reminder.strip()
        names = sorted({b for b in brands if b}, key=len, reverse=True)
        pattern = r"(?<!\w)(?:" + "|".join(map(re.escape, names)) + r")(?!\w)"
        self._brands = re.compile(pattern) if names else None
        self._console: Console | None = None
        # A width or an explicit styling choice lays out for a terminal even on another stream.
        if self.terminal or styled is not None or width is not None:
            from rich.console import Console

            self._console = Console(
                file=stream,
                width=width,
                color_system="auto" if self.styled else None,
                force_terminal=self.styled or None,
                highlight=False,
                emoji=False,
                markup=False,
                soft_wrap=False,
            )

    @property
    def width(self) -> int | None:
        """The width text is wrapped at; None when it is not wrapped."""
        return self._console.width if self._console is not None else None

    def show(self, layout: Layout, numbered: bool = True) -> None:
        """Write one reply."""
        if self._console is None:
            self.stream.write(layout.plain(numbered) + "\n")
            self.stream.flush()
            return
        for item in self._renderables(layout, numbered):
            self._console.print(item)
        self.stream.flush()

    def say(self, text: str, style: str = "") -> None:
        """Write a short message of the front end itself (help, goodbye), wrapped."""
        if self._console is None:
            self.stream.write(text + "\n")
        else:
            self._console.print(self._text(text, style))
        self.stream.flush()

    def blank(self) -> None:
        """An empty line."""
        self.stream.write("\n")
        self.stream.flush()

    # -- layout ------------------------------------------------------------------------------------

    def _renderables(self, layout: Layout, numbered: bool) -> list[RenderableType]:
        from rich.console import Group
        from rich.text import Text

        out: list[RenderableType] = []
        if layout.urgent:
            # An urgent reply comes first and alone, all of it in red.
            for paragraph in _paragraphs(layout.text):
                out.append(self._block(paragraph, "bold red"))
                out.append(Text(""))
            return out[:-1]
        if layout.echo:
            out += [self._text(f"> {layout.echo}", "bold cyan"), Text("")]
        for paragraph in _paragraphs(layout.text):
            style = "dim" if self.reminder and paragraph.strip() == self.reminder else ""
            out += [self._block(paragraph, style), Text("")]
        if layout.options and numbered:
            rows: list[RenderableType] = []
            if layout.heading:
                rows.append(self._text(layout.heading, "bold"))
            rows.append(self._numbered(layout.options))
            out.append(Group(*rows))
        elif out:
            out.pop()
        return out

    def _block(self, paragraph: str, style: str) -> RenderableType:
        """One paragraph: headings bold, list items with a hanging indent."""
        from rich.console import Group

        lines = paragraph.split("\n")
        items: list[RenderableType] = []
        bullets: list[tuple[str, str, str]] = []

        def flush() -> None:
            if bullets:
                items.append(self._list(bullets, style))
                bullets.clear()

        for number, line in enumerate(lines):
            found = _ITEM.match(line)
            if found and (found.group(2) in "-•*" or number > 0):
                bullets.append((found.group(1), found.group(2), found.group(3)))
                continue
            flush()
            last = number == len(lines) - 1
            is_heading = line.endswith(":") and len(line.split()) <= _HEADING_WORDS and not last
            items.append(self._text(line, f"bold {style}".strip() if is_heading else style))
        flush()
        return items[0] if len(items) == 1 else Group(*items)

    def _list(self, bullets: list[tuple[str, str, str]], style: str) -> RenderableType:
        from rich.table import Table

        grid = Table.grid(padding=(0, 1))
        grid.add_column(no_wrap=True, justify="right")
        grid.add_column(ratio=1, overflow="fold")
        for indent, mark, text in bullets:
            grid.add_row(self._text(indent + mark, style), self._text(text, style))
        return grid

    def _numbered(self, options: Sequence[str]) -> RenderableType:
        from rich.padding import Padding
        from rich.table import Table

        grid = Table.grid(padding=(0, 1))
        grid.add_column(no_wrap=True, justify="right")
        grid.add_column(ratio=1, overflow="fold")
        for i, option in enumerate(options, 1):
            grid.add_row(self._text(f"{i}.", "bold cyan"), self._text(option, ""))
        return Padding(grid, (0, 0, 0, 2))

    def _text(self, text: str, style: str) -> RenderableType:
        from rich.text import Text

        out = Text(text, style=style, overflow="fold")
        if self._brands is not None and self.styled:
            out.highlight_regex(self._brands, style="bold")
        return out


def _paragraphs(text: str) -> list[str]:
    return [p for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]


class Progress:
    """A spinner on standard error while something slow runs, on a terminal only; elsewhere a
    slow first start is one line of text.

    Args:
        stream (TextIO): where to show it (standard error).
        message (str): what is happening.
    """

    def __init__(self, stream: TextIO | None = None, message: str = "starting…") -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.message = message
        self._status: Status | None = None

    def __enter__(self) -> Progress:
        if is_terminal(self.stream):
            from rich.console import Console

            console = Console(file=self.stream, color_system=None if wants_plain() else "auto")
            self._status = console.status(self.message, spinner="dots")
            self._status.start()
        return self

    def update(self, message: str) -> None:
        """Say what is happening now (shown as one line when there is no spinner)."""
        self.message = message
        if self._status is not None:
            self._status.update(message)
        else:
            self.stream.write(f"cgt-bot: {message}\n")
            self.stream.flush()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None
