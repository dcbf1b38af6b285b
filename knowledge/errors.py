"""The base of cgt-bot's error tree, kept here because every package depends on knowledge."""

from __future__ import annotations

__all__ = ["CgtBotError", "DataError"]


class CgtBotError(Exception):
    """Base of every error cgt-bot expects; ``str(error)`` is one sentence for a person."""

    exit_code = 1


class DataError(CgtBotError):
    """A knowledge or intent file is invalid; each problem reads ``file: loc.path: message``."""

    exit_code = 1

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        head = problems[0] if problems else "invalid data"
        more = f" (and {len(problems) - 1} more problems; run 'cgt-bot check')" if len(problems) > 1 else ""
        super().__init__(f"{head}{more}")
