"""The real chat in a real pseudo-terminal (pexpect), 60 columns wide: what a person sees."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator

import pexpect
import pytest

from bot import Assistant
from bot.repl import GOODBYE, RESET, WELCOME

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[=>]|\r")
#: prompt_toolkit turns bracketed paste on as each prompt starts and off when a line is entered.
_PROMPT_STARTS = "\x1b[?2004h"
_LINE_ENTERED = "\x1b[?2004l"
WIDTH = 60


def _seen(text: str) -> str:
    """The printed text without terminal control sequences."""
    return _ANSI.sub("", text)


@pytest.fixture(scope="module")
def warm_cache(assistant: Assistant) -> str:
    """The cache folder the session's assistant filled, so the chat starts without training."""
    from knowledge.cache import cache_dir

    return str(cache_dir())


@pytest.fixture
def chat(warm_cache: str) -> Iterator[pexpect.spawn]:
    """``python -m bot chat`` in a 60-column pseudo-terminal."""
    env = {
        **os.environ,
        "COLUMNS": str(WIDTH),
        "LINES": "40",
        "TERM": "xterm-256color",
        "CGT_BOT_CACHE": warm_cache,
        "PROMPT_TOOLKIT_NO_CPR": "1",  # pexpect does not answer cursor position requests
    }
    env.pop("NO_COLOR", None)
    child = pexpect.spawn(
        sys.executable, ["-m", "bot", "chat"], env=env, dimensions=(40, WIDTH), encoding="utf-8", timeout=60
    )
    child.expect_exact(_PROMPT_STARTS)
    yield child
    if child.isalive():
        child.terminate(force=True)


def _ask(child: pexpect.spawn, line: str) -> str:
    child.sendline(line)
    child.expect_exact(_LINE_ENTERED)
    child.expect_exact(_PROMPT_STARTS)
    # What was printed after the line was entered, up to the next prompt.
    return _seen(child.before)


def test_terminal_chat_session(chat: pexpect.spawn) -> None:
    welcome = _seen(chat.before)
    assert " ".join(WELCOME.split()) in " ".join(welcome.split())

    answer = _ask(chat, "what are the side effects of zolgensma")
    lines = [line.rstrip() for line in answer.splitlines()]
    assert max(len(line) for line in lines) <= WIDTH
    assert len([line for line in lines if line]) > 10  # a long answer, wrapped
    prose = " ".join(" ".join(lines).split())
    for line in lines:
        words = line.split()
        if words and not line.lstrip().startswith(("http", "-")):
            # No word is broken across lines: each line's first and last words are whole words.
            assert f" {words[-1]} " in f" {prose} " and f" {words[0]} " in f" {prose} ", line
    assert "You could also ask:" in answer
    options = re.findall(r"^\s+(\d)\. (.+)$", answer, flags=re.M)
    assert options and options[0][0] == "1"

    picked = _ask(chat, "1")
    assert picked.lstrip().startswith(f"> {options[0][1].strip()}")

    sources = _ask(chat, "/sources")
    assert "Sources of the last answer:" in sources and "last reviewed on" in sources

    help_ = _ask(chat, "/help")
    for command in ("/help", "/sources", "/reset", "/quit"):
        assert command in help_

    assert RESET in " ".join(_ask(chat, "/reset").split())
    after_reset = _ask(chat, "how much does it cost?")
    # The conversation was forgotten: no Zolgensma price, only a general reply.
    assert "list price" not in after_reset and "Zolgensma's" not in after_reset

    chat.sendcontrol("d")
    chat.expect(pexpect.EOF)
    assert GOODBYE in _seen(chat.before)
    chat.close()
    assert chat.exitstatus == 0


def test_terminal_did_you_mean_then_ctrl_c(chat: pexpect.spawn) -> None:
    answer = _ask(chat, "side effects of onasemnogene abeparvovec")
    assert answer.lower().count("did you mean") == 1
    assert re.search(r"^\s+1\. Side effects of", answer, flags=re.M)
    assert "You could also ask" not in answer
    chat.sendintr()
    chat.expect(pexpect.EOF)
    assert GOODBYE in _seen(chat.before)
    chat.close()
    assert chat.exitstatus == 0
