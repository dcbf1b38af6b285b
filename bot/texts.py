"""The words of the terminal chat: ``bot/data/terminal.yaml``, validated when it is first read.

Every text a person sees in the terminal, other than the answers themselves, lives in that file;
this module checks that each text is there and uses only the placeholders it may.
"""

from __future__ import annotations

import string
from functools import cache
from pathlib import Path

from pydantic import field_validator

from knowledge.datafile import DataModel, load_validated

__all__ = ["TERMINAL_TEXTS", "TerminalTexts", "terminal_texts"]

TERMINAL_TEXTS = Path(__file__).parent / "data" / "terminal.yaml"
#: The placeholders each text may use; any other is a typo a person would see.
_PLACEHOLDERS = {"pick_a_number": {"count"}, "reviewed": {"date"}}


class TerminalTexts(DataModel):
    """Each text of the terminal chat."""

    welcome: str
    commands: str
    reset: str
    goodbye: str
    same: str
    pick_a_number: str
    also_ask: str
    no_answer_yet: str
    no_sources: str
    sources_heading: str
    reviewed: str
    starting: str
    first_start: str

    @field_validator("*")
    @classmethod
    def _placeholders(cls, value: str, info: object) -> str:
        name = getattr(info, "field_name", "")
        used = {field for _, field, _, _ in string.Formatter().parse(value) if field is not None}
        unknown = used - _PLACEHOLDERS.get(name, set())
        if unknown:
            raise ValueError(f"unknown placeholder {{{sorted(unknown)[0]}}}")
        return value


@cache
def terminal_texts(path: Path = TERMINAL_TEXTS) -> TerminalTexts:
    """The validated texts; a DataError names the file and the field of any problem."""
    return load_validated(path, path.parent, TerminalTexts)
