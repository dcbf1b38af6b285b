"""Driving the real terminal chat in a pseudo-terminal (pexpect): what a person sees."""

from __future__ import annotations

import re

import pexpect

__all__ = ["LINE_ENTERED", "PROMPT_STARTS", "WIDTH", "ask", "seen"]

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[=>]|\r")
#: prompt_toolkit turns bracketed paste on as each prompt starts and off when a line is entered.
PROMPT_STARTS = "\x1b[?2004h"
LINE_ENTERED = "\x1b[?2004l"
WIDTH = 60


def seen(text: str) -> str:
    """The printed text without terminal control sequences."""
    return _ANSI.sub("", text)


def ask(child: pexpect.spawn, line: str) -> str:
    child.sendline(line)
    child.expect_exact(LINE_ENTERED)
    child.expect_exact(PROMPT_STARTS)
    # What was printed after the line was entered, up to the next prompt.
    return seen(child.before)
