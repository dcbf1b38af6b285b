"""The terminal chat: numbered options, commands, leaving."""

from __future__ import annotations

from bot import Assistant
from bot.repl import Chat


def test_repl_numbers_ask_the_suggestion(assistant: Assistant) -> None:
    chat = Chat(assistant)
    first = chat.handle("what is luxturna")
    assert "1. " in first
    option = chat.options[0]
    second = chat.handle("1")
    assert second.startswith(f"> {option}")


def test_repl_out_of_range_number(assistant: Assistant) -> None:
    chat = Chat(assistant)
    chat.handle("what is luxturna")
    assert "Please type a number from 1" in chat.handle("9")


def test_repl_commands(assistant: Assistant) -> None:
    chat = Chat(assistant)
    assert "/reset" in chat.handle("/help")
    assert "start over" in chat.handle("/reset")
    assert chat.handle("/quit") is None


def test_repl_did_you_mean_is_offered_as_options(assistant: Assistant) -> None:
    chat = Chat(assistant)
    out = chat.handle("side effects of onasemnogene abeparvovec")
    assert "Did you mean:" in out
    assert any("Zolgensma" in o for o in chat.options)
