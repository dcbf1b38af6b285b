"""Logging for every cgt-bot command, set up once by the CLI.

Log lines never carry a bot token: a formatter scrubs anything shaped like one from the whole
line, traceback included. The ``httpx`` and ``httpcore`` loggers stay at WARNING (their INFO lines
are request URLs, which hold the token) and ``telegram`` at INFO at most (its DEBUG lines hold
whole updates: message texts, names and ids).
"""

from __future__ import annotations

import logging
import re
import sys
from typing import TextIO

from bot.errors import UsageError

__all__ = ["TOKEN_PATTERN", "ScrubbingFormatter", "configure_logging", "scrub"]

#: A Telegram bot token: the bot's numeric id, a colon, and the secret part.
TOKEN_PATTERN = re.compile(r"\d{6,}(?::|%3A)[A-Za-z0-9_-]{30,}")

_REDACTED = "[redacted-token]"
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

# Loggers that print secrets or personal data below a level: (name, most verbose level allowed).
_QUIET = (("httpx", logging.WARNING), ("httpcore", logging.WARNING), ("telegram", logging.INFO))


def scrub(text: str) -> str:
    """Replace every token-shaped string in ``text``."""
    return TOKEN_PATTERN.sub(_REDACTED, text)


class ScrubbingFormatter(logging.Formatter):
    """A formatter whose output, exception text included, holds no token-shaped string."""

    def format(self, record: logging.LogRecord) -> str:
        """Format ``record`` as usual, then scrub the whole line."""
        return scrub(super().format(record))


class _ScrubbingHandler(logging.StreamHandler[TextIO]):
    """The one handler :func:`configure_logging` installs (marked so a second call replaces it)."""


def configure_logging(level: str = "WARNING", stream: TextIO | None = None) -> None:
    """Send log lines at ``level`` and above to standard error, with tokens scrubbed.

    Calling it again replaces the handler it installed before.

    Args:
        level (str): DEBUG, INFO, WARNING, ERROR or CRITICAL (any case).
        stream (TextIO | None): Where lines go; standard error when None.

    Raises:
        UsageError: ``level`` is not a level name.
    """
    name = str(level).upper()
    if name not in _LEVELS:
        raise UsageError(f"Unknown log level {level!r}; use one of {', '.join(_LEVELS)}.")
    numeric = logging.getLevelName(name)
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, _ScrubbingHandler):
            root.removeHandler(handler)
    handler = _ScrubbingHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(ScrubbingFormatter(_FORMAT))
    root.addHandler(handler)
    root.setLevel(numeric)
    for logger_name, most_verbose in _QUIET:
        logging.getLogger(logger_name).setLevel(max(numeric, most_verbose))
