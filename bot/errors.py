"""One exception tree for everything cgt-bot reports to a person.

The CLI catches :class:`CgtBotError`, prints its one-sentence message and exits
with its ``exit_code``; nothing else reaches the terminal as a traceback.
"""

from __future__ import annotations

from knowledge.errors import CgtBotError, DataError

__all__ = ["CgtBotError", "DataError", "UsageError"]


class UsageError(CgtBotError):
    """The command line or its input is wrong: fix the call and try again."""

    exit_code = 2
