"""The terminal chat: numbered options, commands, leaving, and how replies are laid out."""

from __future__ import annotations

import io
import re

import pytest

from bot import Assistant
from bot.repl import Chat, run_repl
from bot.terminal import Layout, Screen
from bot.texts import terminal_texts

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _screen(assistant: Assistant, styled: bool, width: int = 60) -> tuple[Screen, io.StringIO]:
    out = io.StringIO()
    brands = [p.brand for p in assistant.knowledge.products.values()]
    return Screen(out, brands, assistant.renderer.reminder(), styled=styled, width=width), out


def test_repl_numbers_ask_the_suggestion(assistant: Assistant) -> None:
    chat = Chat(assistant)
    first = chat.handle("what is luxturna")
    assert first is not None and first.options and first.heading == "You could also ask:"
    option = chat.options[0]
    second = chat.handle("1")
    assert second is not None and second.echo == option
    assert second.plain().startswith(f"> {option}")


def test_repl_out_of_range_number(assistant: Assistant) -> None:
    chat = Chat(assistant)
    chat.handle("what is luxturna")
    out = chat.handle("9")
    assert out is not None and out.text.startswith("Please type a number from 1")


def test_repl_commands(assistant: Assistant) -> None:
    chat = Chat(assistant)
    help_ = chat.handle("/help")
    assert (
        help_ is not None
        and help_.text == terminal_texts().commands
        and "/sources" in terminal_texts().commands
    )
    reset = chat.handle("/reset")
    assert reset is not None and reset.text == terminal_texts().reset
    assert chat.handle("/quit") is None


def test_repl_sources_of_the_last_answer(assistant: Assistant) -> None:
    chat = Chat(assistant)
    before = chat.handle("/sources")
    assert before is not None and "Ask a question first" in before.text
    chat.handle("how much does zolgensma cost?")
    assert chat.last is not None and chat.last.sources
    shown = chat.handle("/sources")
    assert shown is not None
    assert shown.text.startswith("Sources of the last answer:")
    assert chat.last.sources[0].title in shown.text
    assert f"last reviewed on {chat.last.reviewed}" in shown.text
    chat.handle("hello")
    none = chat.handle("/sources")
    assert none is not None and "no facts" in none.text


def test_repl_did_you_mean_asks_once(assistant: Assistant) -> None:
    """The reply asks "Did you mean ...?"; the options are numbered under it, with no heading
    that asks it again."""
    chat = Chat(assistant)
    out = chat.handle("side effects of onasemnogene abeparvovec")
    assert out is not None and out.heading is None
    assert any("Zolgensma" in o for o in chat.options)
    plain = out.plain()
    assert plain.lower().count("did you mean") == 1
    assert "  1. " in plain


def test_repl_options_never_repeat_the_text_or_the_question(assistant: Assistant) -> None:
    chat = Chat(assistant)
    for question in ("which car-t therapies are approved", "what's the weather today", "what is kymriah"):
        out = chat.handle(question)
        assert out is not None
        for option in out.options:
            bare = option.lower().rstrip("?")
            assert bare not in out.text.lower()
            assert bare != question


def test_repl_same_answer_again_is_said_once(assistant: Assistant) -> None:
    chat = Chat(assistant)
    first = chat.handle("kymriah vs yescarta")
    again = chat.handle("kymriah vs yescarta")
    assert first is not None and again is not None
    assert len(first.text) > 500
    assert again.text == terminal_texts().same


def test_repl_urgent_reply_comes_alone_in_red(assistant: Assistant) -> None:
    chat = Chat(assistant)
    out = chat.handle("I have a high fever after my CAR-T infusion")
    assert out is not None and out.urgent and not out.options
    screen, stream = _screen(assistant, styled=True)
    screen.show(out)
    text = stream.getvalue()
    assert text.startswith("\x1b[1;31m")  # red from the first character: nothing before it
    assert "911" in _ANSI.sub("", text)


def test_repl_screen_wraps_at_words_and_styles(assistant: Assistant) -> None:
    chat = Chat(assistant)
    out = chat.handle("what are the side effects of zolgensma")
    assert out is not None
    screen, stream = _screen(assistant, styled=True, width=60)
    screen.show(out)
    styled = stream.getvalue()
    assert "\x1b[1mZolgensma\x1b[0m" in styled  # brand names bold
    assert "\x1b[2mThis is general information" in styled  # the reminder dimmed
    assert "\x1b[1;36m1.\x1b[0m" in styled  # numbered options
    lines = _ANSI.sub("", styled).splitlines()
    assert max(len(line.rstrip()) for line in lines) <= 60
    words = set(re.findall(r"[A-Za-z]+", out.plain()))
    for line in lines:
        # A line never ends inside a word: its last word is a whole word of the reply.
        tail = re.findall(r"[A-Za-z]+", line.rstrip())
        if tail:
            assert tail[-1] in words, line


@pytest.mark.parametrize("width", [60, 80, 120])
def test_repl_screen_plain_keeps_the_layout_without_styles(assistant: Assistant, width: int) -> None:
    chat = Chat(assistant)
    out = chat.handle("what is kymriah")
    assert out is not None
    screen, stream = _screen(assistant, styled=False, width=width)
    screen.show(out)
    text = stream.getvalue()
    assert "\x1b[" not in text
    assert max(len(line.rstrip()) for line in text.splitlines()) <= width
    assert " ".join(text.split()).startswith(" ".join(out.text.split())[:200])


def test_repl_screen_to_a_pipe_is_the_reply_text() -> None:
    stream = io.StringIO()
    text = "Kymriah is a therapy.\n\nTalk to your provider."
    layout = Layout(text, ["How is Kymriah given?"], "You could also ask:")
    Screen(stream, ["Kymriah"], "Talk to your provider.").show(layout)
    assert stream.getvalue() == (
        "Kymriah is a therapy.\n\nTalk to your provider.\n\nYou could also ask:\n  1. How is Kymriah given?\n"
    )


def test_repl_piped_input_gets_answers_only(assistant: Assistant) -> None:
    lines = ["what is zolgensma", "", "1", "kymriah vs yescarta", "kymriah vs yescarta"]
    lines += ["/quit", "never asked"]
    stdin = io.StringIO("\n".join(lines) + "\n")
    stdout = io.StringIO()
    assert run_repl(assistant, stdin, stdout) == 0
    out = stdout.getvalue()
    assert "Zolgensma" in out
    assert "You could also ask" not in out and "  1. " not in out and "> " not in out
    assert terminal_texts().same not in out  # a script asking twice gets the answer twice
    assert "\x1b[" not in out
