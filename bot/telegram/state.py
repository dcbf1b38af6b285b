"""Per-chat state and the processing of updates: ordering per chat, rate limits, retries."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiolimiter import AsyncLimiter
from telegram import (
    Update,
)
from telegram.error import NetworkError, RetryAfter, TimedOut
from telegram.ext import BaseRateLimiter, BaseUpdateProcessor

from bot.errors import CgtBotError

if TYPE_CHECKING:
    from bot.telegram.redis import RedisChatStore

__all__ = ["ChatState", "ChatStore", "PerChatUpdateProcessor", "RetryingRateLimiter", "saved_sources"]

logger = logging.getLogger(__name__)

MAX_CONCURRENT_UPDATES = 256
FLOOD_LIMIT = 20  # messages one chat may have answered within FLOOD_WINDOW seconds
FLOOD_WINDOW = 60.0
SEND_DEADLINE = 300.0  # seconds a send is retried (network errors, 429s) before it is given up
BACKOFF_FIRST, BACKOFF_MAX = 0.5, 5.0  # seconds between retries after a network error
OVERALL_RATE = 30.0  # messages a second, all chats together (Telegram's limit)
GROUP_RATE, GROUP_WINDOW = 20, 60.0  # messages a minute in one group
MAX_BUTTON_KEYS = 64  # button keys kept per chat; older buttons get "please ask again"
MAX_SOURCE_KEYS = 16  # "Sources" buttons kept per chat: each holds a list, so fewer than questions


# ---------------------------------------------------------------------------------------------
# Per-chat state


@dataclass
class ChatState:
    """What the front end keeps about one chat."""

    seen: float
    buttons: dict[str, str] = field(default_factory=dict)
    recent: deque[float] = field(default_factory=deque)
    warned: bool = False
    #: Key of a "Sources" button -> the sources of its answer (``{"sources": [...], "reviewed": ...}``).
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)

    def key_for(self, question: str) -> str:
        """The callback data of a button that asks ``question``: a short key, never the text."""
        return "q:" + _key_in(self.buttons, question, MAX_BUTTON_KEYS)

    def key_for_sources(self, sources: list[dict[str, Any]], reviewed: str | None) -> str:
        """The callback data of a "Sources" button showing ``sources``: a short key, never the list."""
        return "r:" + _key_in(self.sources, {"sources": sources, "reviewed": reviewed}, MAX_SOURCE_KEYS)

    def flooded(self, now: float) -> bool:
        """Count one more message; True when the chat sent too many within the window."""
        while self.recent and now - self.recent[0] > FLOOD_WINDOW:
            self.recent.popleft()
        if len(self.recent) >= FLOOD_LIMIT:
            return True
        self.recent.append(now)
        self.warned = False
        return False


def _key_in(keys: dict[str, Any], value: Any, limit: int) -> str:
    """The key of ``value`` in ``keys``, added if new; the oldest keys go beyond ``limit``.

    A key only ever names one value, so an old button can never show something newer.
    """
    for key, known in keys.items():
        if known == value:
            return key
    key = secrets.token_urlsafe(9)  # 72 random bits: a key is never handed out twice
    keys[key] = value
    while len(keys) > limit:
        del keys[next(iter(keys))]
    return key


def saved_sources(saved: Any) -> dict[str, dict[str, Any]]:
    """The "Sources" buttons of saved state, checked for shape (files and Redis are outside input).

    Raises:
        ValueError: They do not have the shape :meth:`ChatState.key_for_sources` gives them.
    """
    if not isinstance(saved, dict):
        raise ValueError("sources are not a mapping")
    out = {}
    for key, entry in saved.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("sources"), list):
            raise ValueError("a sources entry has no list of sources")
        out[str(key)] = {"sources": entry["sources"], "reviewed": entry.get("reviewed")}
    return out


class ChatStore:
    """Per-chat state in memory, with an expiry, and saved to a JSON file only when asked.

    Args:
        expiry (float): Seconds without a message after which a chat counts as expired.
        path (str | Path | None): A JSON file to load at start and save to; None keeps
            everything in memory only.
    """

    shared = False  # state of this process only

    def __init__(self, expiry: float, path: str | os.PathLike[str] | None = None) -> None:
        self.expiry = expiry
        self.path = Path(path) if path is not None else None
        self.chats: dict[int, ChatState] = {}
        self._dirty = False
        if self.path is not None:
            self._load()

    def touch(self, chat_id: int, now: float) -> ChatState:
        """The state of ``chat_id`` (new if there is none), marked as seen at ``now``."""
        state = self.chats.get(chat_id)
        if state is None:
            state = self.chats[chat_id] = ChatState(seen=now)
        state.seen = now
        self._dirty = True
        return state

    def is_expired(self, chat_id: int, now: float) -> bool:
        """Whether ``chat_id`` has state that has expired by ``now``."""
        state = self.chats.get(chat_id)
        return state is not None and now - state.seen > self.expiry

    def expired(self, now: float) -> list[int]:
        """The chats whose state has expired by ``now``."""
        return [chat_id for chat_id, state in self.chats.items() if now - state.seen > self.expiry]

    def drop(self, chat_id: int) -> None:
        """Remove everything held about ``chat_id``."""
        if self.chats.pop(chat_id, None) is not None:
            self._dirty = True

    def save(self) -> None:
        """Write the state to the file, if there is one and anything changed (owner-only file)."""
        if self.path is None or not self._dirty:
            return
        data = {
            "version": 1,
            "chats": {
                str(chat_id): {"seen": state.seen, "buttons": state.buttons, "sources": state.sources}
                for chat_id, state in self.chats.items()
            },
        }
        temporary = self.path.with_name(self.path.name + ".tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(data, handle)
        os.replace(temporary, self.path)
        self._dirty = False

    def _load(self) -> None:
        assert self.path is not None
        if not self.path.exists():
            return
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            now = time.time()
            for key, saved in data["chats"].items():
                state = ChatState(
                    seen=float(saved["seen"]),
                    buttons={str(k): str(v) for k, v in saved["buttons"].items()},
                    sources=saved_sources(saved.get("sources", {})),  # none in files of older versions
                )
                if now - state.seen <= self.expiry:
                    self.chats[int(key)] = state
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
            raise CgtBotError(
                f"Cannot read the saved chat state in {self.path} ({type(err).__name__}); "
                "move the file away to start afresh."
            ) from None


# ---------------------------------------------------------------------------------------------
# Processing and sending


class PerChatUpdateProcessor(BaseUpdateProcessor):
    """Runs updates of different chats in parallel and the updates of one chat in order.

    With a shared store (Redis), a chat's updates also wait for the chat's lock in Redis, so that
    whichever worker receives them, one chat is worked on by one worker at a time; and an update
    some worker already answered (Telegram delivers again a webhook call it saw no answer to) is
    skipped.

    Args:
        max_concurrent_updates (int): Updates worked on at once, all chats together.
        shared (RedisChatStore | None): The state shared with other workers; None for memory only.
    """

    def __init__(
        self, max_concurrent_updates: int = MAX_CONCURRENT_UPDATES, shared: RedisChatStore | None = None
    ) -> None:
        super().__init__(max_concurrent_updates)
        self._locks: dict[int, asyncio.Lock] = {}
        self._users: dict[int, int] = {}
        self.shared = shared

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        """Await ``coroutine`` once every earlier update of the same chat is done."""
        chat = update.effective_chat if isinstance(update, Update) else None
        if chat is None:
            shared = self.shared
            if shared is not None and isinstance(update, Update) and not await shared.claim(update.update_id):
                _discard(coroutine)
                return
            await coroutine
            return
        lock = self._locks.setdefault(chat.id, asyncio.Lock())
        self._users[chat.id] = self._users.get(chat.id, 0) + 1
        try:
            async with lock:
                if self.shared is None:
                    await coroutine
                    return
                assert isinstance(update, Update)
                async with self.shared.chat_lock(chat.id):
                    if await self.shared.answered(update.update_id):
                        _discard(coroutine)
                        return
                    await coroutine
                    await self.shared.mark_answered(update.update_id)
        finally:
            self._users[chat.id] -= 1
            if not self._users[chat.id]:
                del self._users[chat.id], self._locks[chat.id]

    async def initialize(self) -> None:
        """Nothing to set up."""

    async def shutdown(self) -> None:
        """Nothing to release."""


def _discard(coroutine: Awaitable[Any]) -> None:
    """Drop a coroutine that will not run (an update already answered)."""
    close = getattr(coroutine, "close", None)
    if close is not None:
        close()


class OutageLog:
    """Logs a spell of failed requests once when it starts and once when it ends, with counts.

    Lines name the kind of error only: never a text, an id or the token.
    """

    def __init__(self) -> None:
        self.started: float | None = None
        self.failures = 0
        self.held = 0
        self.given_up = 0

    def failed(self, error: Exception, first_for_request: bool) -> None:
        """Count one failed attempt; the first of a spell is logged."""
        if self.started is None:
            self.started = time.monotonic()
            self.failures = self.held = self.given_up = 0
            logger.warning(
                "Telegram cannot take messages now (%s); holding answers and retrying for up to %d minutes.",
                type(error).__name__,
                round(SEND_DEADLINE / 60),
            )
        self.failures += 1
        self.held += first_for_request

    def gave_up(self) -> None:
        """Count one send abandoned after the deadline."""
        self.given_up += 1

    def succeeded(self) -> None:
        """A request went through: end the spell, if there is one, with one line."""
        if self.started is None:
            return
        logger.warning(
            "Telegram takes messages again after %.1f s: %d failed attempts, %d sends held, %d given up.",
            time.monotonic() - self.started,
            self.failures,
            self.held,
            self.given_up,
        )
        self.started = None


class RetryingRateLimiter(BaseRateLimiter[int]):
    """Telegram's limits for outgoing requests, retrying 429s and network errors for minutes.

    About 30 messages a second overall and 20 a minute in each group. A 429 is retried after its
    ``retry_after``, a network error with a growing back-off, until ``deadline`` seconds have
    passed; a timeout is never retried, since the message may have arrived (as python-telegram-bot
    does), unless the request was never sent (connect or pool timeout). Retries happen inside the
    chat's turn, so each chat's answers stay in order. Failures are logged once per spell by
    :class:`OutageLog`, never per request.
    """

    def __init__(
        self,
        *,
        deadline: float = SEND_DEADLINE,
        overall_rate: float = OVERALL_RATE,
        shared: RedisChatStore | None = None,
    ) -> None:
        self._deadline = deadline
        self._rate = overall_rate
        self._shared = shared
        self._overall = AsyncLimiter(overall_rate, 1)
        self._groups: dict[int | str, AsyncLimiter] = {}
        self.outages = OutageLog()

    async def initialize(self) -> None:
        """Nothing to set up."""

    async def shutdown(self) -> None:
        """Nothing to release."""

    async def process_request(
        self,
        callback: Callable[..., Any],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> Any:
        """Send within the limits; retry what is safe to retry until the deadline."""
        give_up_at = time.monotonic() + self._deadline
        chat_id = data.get("chat_id")
        attempt = 0
        while True:
            failure: Exception
            try:
                result = await self._limited(chat_id, callback, args, kwargs)
            except RetryAfter as err:
                failure = err
                wait = err._retry_after.total_seconds() + 0.1  # as PTB's own rate limiter reads it
            except TimedOut as err:
                if not _never_sent(err) or endpoint == "sendChatAction":
                    self.outages.failed(err, attempt == 0)
                    raise
                failure = err
                wait = min(BACKOFF_MAX, BACKOFF_FIRST * 2**attempt)
            except NetworkError as err:
                if type(err) is not NetworkError or endpoint == "sendChatAction":
                    raise  # BadRequest and the like: retrying changes nothing
                failure = err
                wait = min(BACKOFF_MAX, BACKOFF_FIRST * 2**attempt)
            else:
                self.outages.succeeded()
                return result
            self.outages.failed(failure, attempt == 0)
            attempt += 1
            if time.monotonic() + wait > give_up_at:
                self.outages.gave_up()
                raise failure
            await asyncio.sleep(wait)

    async def _limited(self, chat_id: Any, callback: Callable[..., Any], args: Any, kwargs: Any) -> Any:
        if chat_id is None:
            return await callback(*args, **kwargs)
        in_group = isinstance(chat_id, str) or (isinstance(chat_id, int) and chat_id < 0)
        if self._shared is not None:  # counted in Redis: the limits hold for all workers together
            await self._shared.take_slot("all", round(self._rate), 1.0)
            if in_group:
                await self._shared.take_slot(f"group:{chat_id}", GROUP_RATE, GROUP_WINDOW)
            return await callback(*args, **kwargs)
        group = None
        if in_group:
            group = self._groups.setdefault(chat_id, AsyncLimiter(GROUP_RATE, GROUP_WINDOW))
        async with self._overall:
            if group is None:
                return await callback(*args, **kwargs)
            async with group:
                return await callback(*args, **kwargs)


def _never_sent(error: TimedOut) -> bool:
    """Whether a timeout happened before the request left (connect or pool timeout)."""
    import httpx

    return isinstance(error.__cause__, httpx.ConnectTimeout | httpx.PoolTimeout) or "Pool timeout" in str(
        error
    )
