"""What the bot remembers of a conversation, so that "how much is it?" has a subject.

Context is kept in memory only, per session id, and expires after a period of
silence or a number of turns, whichever comes first.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from threading import Lock

__all__ = ["Context", "SessionStore"]


@dataclass
class Context:
    """The subject of a conversation so far.

    Attributes:
        products (list[str]): product ids of the last answer that named products.
        conditions (list[str]): condition ids of the last answer that named conditions.
        topics (list[str]): topic ids of the last answer that named topics.
        recent (list[str]): the last few distinct products talked about, oldest first.
        listed (list[str]): the products the last list answer showed, in the order shown.
        intent (str | None): the last intent answered.
        sources (list[dict]): the sources ({title, url, date}) of the last answer that stated facts.
        reviewed (str | None): the review date of that answer's facts.
        turns (int): messages since the subject was set.
        updated (float): monotonic time of the last message.
    """

    products: list[str] = field(default_factory=list)
    conditions: list[str] = field(default_factory=list)
    topics: list[str] = field(default_factory=list)
    recent: list[str] = field(default_factory=list)
    listed: list[str] = field(default_factory=list)
    intent: str | None = None
    sources: list[dict[str, str | None]] = field(default_factory=list)
    reviewed: str | None = None
    turns: int = 0
    updated: float = 0.0


class SessionStore:
    """Contexts by session id, each forgotten after ``ttl`` seconds or ``max_turns`` turns.

    Args:
        ttl (float): seconds of silence after which a context is dropped.
        max_turns (int): turns after which a subject is no longer assumed.
        clock (Callable[[], float]): time source, replaceable in tests.
    """

    def __init__(
        self, ttl: float = 30 * 60, max_turns: int = 10, clock: Callable[[], float] = time.monotonic
    ):
        self.ttl = ttl
        self.max_turns = max_turns
        self.clock = clock
        self._contexts: dict[str, Context] = {}
        self._lock = Lock()

    def get(self, session: str | None) -> Context:
        """The live context of a session; a fresh one if none, expired, or no session given."""
        if session is None:
            return Context()
        now = self.clock()
        with self._lock:
            self._sweep(now)
            context = self._contexts.get(session)
            if context is None or context.turns >= self.max_turns:
                context = Context()
                self._contexts[session] = context
            return context

    def update(self, session: str | None, context: Context) -> None:
        """Store the context after a turn."""
        if session is None:
            return
        context.updated = self.clock()
        with self._lock:
            self._contexts[session] = context

    def reset(self, session: str) -> None:
        """Forget the subject of a conversation."""
        with self._lock:
            self._contexts.pop(session, None)

    def __len__(self) -> int:
        return len(self._contexts)

    def _sweep(self, now: float) -> None:
        expired = [key for key, c in self._contexts.items() if now - c.updated > self.ttl]
        for key in expired:
            del self._contexts[key]
