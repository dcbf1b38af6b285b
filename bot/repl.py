"""The terminal chat: prompt_toolkit when a person types, plain lines when input is piped.

History lives in memory only (arrow keys work within a chat), because health
questions should not be written to disk.
"""

from __future__ import annotations

from typing import TextIO

from bot.assistant import Assistant
from bot.reply import Reply

__all__ = ["Chat", "run_repl"]

SESSION = "repl"
WELCOME = (
    "cgt-bot: questions about FDA-approved cell and gene therapies, in plain words.\n"
    "General information only, not medical advice. Type /help for commands, /quit to leave."
)
COMMANDS = (
    "Commands:\n"
    "  /help   show this help\n"
    "  /reset  start a new conversation (forget what we talked about)\n"
    "  /quit   leave (Ctrl-D works too)\n"
    "Type the number of a suggestion to ask it."
)


class Chat:
    """One terminal conversation: turns input lines into answers, keeps the numbered options.

    Args:
        assistant (Assistant): answers the questions.
        numbered (bool): show follow-up suggestions as numbered options.
    """

    def __init__(self, assistant: Assistant, numbered: bool = True) -> None:
        self.assistant = assistant
        self.numbered = numbered
        self.options: list[str] = []

    def handle(self, line: str) -> str | None:
        """The text to print for one input line; None means the person wants to leave."""
        text = line.strip()
        command = text.lower()
        if command in ("/quit", "/exit", "/q"):
            return None
        if command == "/help":
            return COMMANDS
        if command == "/reset":
            self.assistant.reset(SESSION)
            self.options = []
            return "OK, let's start over. What would you like to know?"
        if text.isdigit() and self.options:
            index = int(text) - 1
            if 0 <= index < len(self.options):
                text = self.options[index]
            else:
                return f"Please type a number from 1 to {len(self.options)}, or a question."
        reply = self.assistant.reply(text, session=SESSION)
        return self.format(reply, asked=text if text != line.strip() else None)

    def format(self, reply: Reply, asked: str | None = None) -> str:
        """The reply as terminal text, with numbered suggestions."""
        parts = [f"> {asked}"] if asked else []
        parts.append(reply.text)
        self.options = list(reply.suggestions)
        if self.options and self.numbered:
            heading = "Did you mean:" if reply.did_you_mean else "You could also ask:"
            parts.append(heading + "\n" + "\n".join(f"  {i}. {s}" for i, s in enumerate(self.options, 1)))
        return "\n\n".join(parts)


def run_repl(assistant: Assistant, stdin: TextIO, stdout: TextIO) -> int:
    """Chat until /quit, Ctrl-D or Ctrl-C; return the exit code."""
    chat = Chat(assistant)
    if not stdin.isatty():
        # Piped input: answers only, no prompt or banner, one blank line between answers.
        first = True
        for line in stdin:
            if not line.strip():
                continue
            out = chat.handle(line)
            if out is None:
                break
            stdout.write(("" if first else "\n") + out + "\n")
            stdout.flush()
            first = False
        return 0
    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import InMemoryHistory

    prompt = PromptSession(history=InMemoryHistory())
    stdout.write(WELCOME + "\n\n")
    while True:
        try:
            line = prompt.prompt("you> ")
        except (EOFError, KeyboardInterrupt):
            stdout.write("Goodbye. Take care!\n")
            return 0
        if not line.strip():
            continue
        out = chat.handle(line)
        if out is None:
            stdout.write("Goodbye. Take care!\n")
            return 0
        stdout.write("\n" + out + "\n\n")
        stdout.flush()
