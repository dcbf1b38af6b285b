"""The terminal chat: prompt_toolkit reads what a person types, ``bot.terminal`` lays out the
answers; piped input gets answers only, as plain text.

History lives in memory only (arrow keys work within a chat), because health
questions should not be written to disk.
"""

from __future__ import annotations

from typing import TextIO

from bot.assistant import Assistant
from bot.reply import Reply
from bot.terminal import Layout, Screen, is_terminal
from bot.texts import terminal_texts

__all__ = ["Chat", "run_repl"]

SESSION = "repl"
#: How many recent answers a repeated answer is compared with.
RECENT = 3


class Chat:
    """One terminal conversation: turns input lines into layouts, keeps the numbered options.

    Args:
        assistant (Assistant): answers the questions.
        numbered (bool): offer follow-up suggestions and did-you-mean options as numbered
            choices (off for piped input, which gets answers only).
    """

    def __init__(self, assistant: Assistant, numbered: bool = True) -> None:
        self.assistant = assistant
        self.numbered = numbered
        self.options: list[str] = []
        self.last: Reply | None = None
        self._recent: list[str] = []

    def handle(self, line: str) -> Layout | None:
        """What to show for one input line; None means the person wants to leave."""
        text = line.strip()
        command = text.lower()
        if command in ("/quit", "/exit", "/q"):
            return None
        if command == "/help":
            return Layout(terminal_texts().commands)
        if command == "/sources":
            return Layout(self.sources())
        if command == "/reset":
            self.assistant.reset(SESSION)
            self.options, self.last, self._recent = [], None, []
            return Layout(terminal_texts().reset)
        asked = None
        if self.numbered and text.isdigit() and self.options:
            index = int(text) - 1
            if not 0 <= index < len(self.options):
                return Layout(terminal_texts().pick_a_number.format(count=len(self.options)))
            text = asked = self.options[index]
        reply = self.assistant.reply(text, session=SESSION)
        return self.layout(reply, asked, question=text)

    def layout(self, reply: Reply, asked: str | None = None, question: str = "") -> Layout:
        """The reply laid out: its text (once), then what can be picked by number."""
        self.last = reply
        said = reply.text.lower()
        just_asked = _bare(question)
        # An option the text already shows (an example question), or the question just asked,
        # is not offered again.
        offered = [s for s in reply.suggestions if _bare(s) not in said and _bare(s) != just_asked]
        self.options = offered if self.numbered else []
        text = reply.text
        if self.numbered and not reply.urgent and reply.text in self._recent:
            text = terminal_texts().same
        self._recent = [*self._recent[-(RECENT - 1) :], reply.text]
        heading = None if reply.did_you_mean else terminal_texts().also_ask
        return Layout(text, self.options, heading, reply.urgent, asked)

    def sources(self) -> str:
        """The sources of the last answer, most authoritative first, and when they were reviewed."""
        reply, texts = self.last, terminal_texts()
        if reply is None:
            return texts.no_answer_yet
        if not reply.sources:
            return texts.no_sources
        lines = [texts.sources_heading]
        for source in reply.sources:
            where = f": {source.url}" if source.url else ""
            lines.append(f"- {source.title} ({source.date}){where}")
        if reply.reviewed:
            lines.append("\n" + texts.reviewed.format(date=reply.reviewed))
        return "\n".join(lines)


def _bare(question: str) -> str:
    return " ".join(question.lower().rstrip("?!. ").split())


def _screen(assistant: Assistant, stdout: TextIO) -> Screen:
    brands = [p.brand for p in assistant.knowledge.products.values()]
    return Screen(stdout, brands, assistant.renderer.reminder())


def run_repl(assistant: Assistant, stdin: TextIO, stdout: TextIO) -> int:
    """Chat until /quit, Ctrl-D or Ctrl-C; return the exit code."""
    if not is_terminal(stdin):
        return _run_piped(assistant, stdin, stdout)
    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import InMemoryHistory

    chat = Chat(assistant)
    screen = _screen(assistant, stdout)
    prompt: PromptSession[str] = PromptSession(history=InMemoryHistory())
    screen.say(terminal_texts().welcome)
    screen.blank()
    while True:
        try:
            line = prompt.prompt("you> ")
            if not line.strip():
                continue
            layout = chat.handle(line)
        except (EOFError, KeyboardInterrupt):
            layout = None
        if layout is None:
            screen.say(terminal_texts().goodbye)
            return 0
        screen.blank()
        screen.show(layout)
        screen.blank()


def _run_piped(assistant: Assistant, stdin: TextIO, stdout: TextIO) -> int:
    """Piped input: answers only (no prompt, banner or numbered options), one blank line between."""
    chat = Chat(assistant, numbered=False)
    screen = _screen(assistant, stdout)
    first = True
    for line in stdin:
        if not line.strip():
            continue
        layout = chat.handle(line)
        if layout is None:
            break
        if not first:
            screen.blank()
        screen.show(layout, numbered=False)
        first = False
    return 0
