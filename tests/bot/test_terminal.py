"""The real chat in a real pseudo-terminal (pexpect), 60 columns wide: what a person sees."""

from __future__ import annotations

import re

import pexpect

from bot.texts import terminal_texts
from tests.auxil.terminal import WIDTH, ask, seen


def test_terminal_chat_session(chat: pexpect.spawn) -> None:
    welcome = seen(chat.before)
    assert " ".join(terminal_texts().welcome.split()) in " ".join(welcome.split())

    answer = ask(chat, "what are the side effects of zolgensma")
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

    picked = ask(chat, "1")
    assert picked.lstrip().startswith(f"> {options[0][1].strip()}")

    sources = ask(chat, "/sources")
    assert "Sources of the last answer:" in sources and "last reviewed on" in sources

    help_ = ask(chat, "/help")
    for command in ("/help", "/sources", "/reset", "/quit"):
        assert command in help_

    assert terminal_texts().reset in " ".join(ask(chat, "/reset").split())
    after_reset = ask(chat, "how much does it cost?")
    # The conversation was forgotten: no Zolgensma price, only a general reply.
    assert "list price" not in after_reset and "Zolgensma's" not in after_reset

    chat.sendcontrol("d")
    chat.expect(pexpect.EOF)
    assert terminal_texts().goodbye in seen(chat.before)
    chat.close()
    assert chat.exitstatus == 0


def test_terminal_did_you_mean_then_ctrl_c(chat: pexpect.spawn) -> None:
    answer = ask(chat, "side effects of onasemnogene abeparvovec")
    assert answer.lower().count("did you mean") == 1
    assert re.search(r"^\s+1\. Side effects of", answer, flags=re.M)
    assert "You could also ask" not in answer
    chat.sendintr()
    chat.expect(pexpect.EOF)
    assert terminal_texts().goodbye in seen(chat.before)
    chat.close()
    assert chat.exitstatus == 0
