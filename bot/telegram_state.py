"""Per-chat state and the processing of updates: ordering per chat, rate limits, retries."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from telegram import (
    Update,
)
from telegram.error import BadRequest, NetworkError
from telegram.ext import (
    AIORateLimiter,
    BaseUpdateProcessor,
)

from bot.errors import CgtBotError

if TYPE_CHECKING:
    pass

__all__ = ["ChatState", "ChatStore", "PerChatUpdateProcessor", "RetryingRateLimiter"]

logger = logging.getLogger(__name__)

#: The update types the bot asks Telegram for.

MAX_CONCURRENT_UPDATES = 256
FLOOD_LIMIT = 20  # messages one chat may have answered within FLOOD_WINDOW seconds
FLOOD_WINDOW = 60.0
NETWORK_RETRIES = 3  # retries after a network error when sending
MAX_BUTTON_KEYS = 64  # button keys kept per chat; older buttons get "please ask again"


# ---------------------------------------------------------------------------------------------
# Per-chat state


@dataclass
class ChatState:
    """What the front end keeps about one chat."""

    seen: float
    buttons: dict[str, str] = field(default_factory=dict)
    next_key: int = 0
    recent: deque[float] = field(default_factory=deque)
    warned: bool = False

    def key_for(self, question: str) -> str:
        """The callback data of a button that asks ``question``: a short key, never the text."""
        for key, known in self.buttons.items():
            if known == question:
                return f"q:{key}"
        key = _base36(self.next_key)
        self.next_key += 1
        self.buttons[key] = question
        while len(self.buttons) > MAX_BUTTON_KEYS:
            del self.buttons[next(iter(self.buttons))]
        return f"q:{key}"

    def flooded(self, now: float) -> bool:
        """Count one more message; True when the chat sent too many within the window."""
        while self.recent and now - self.recent[0] > FLOOD_WINDOW:
            self.recent.popleft()
        if len(self.recent) >= FLOOD_LIMIT:
            return True
        self.recent.append(now)
        self.warned = False
        return False


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    text = ""
    while True:
        number, rest = divmod(number, 36)
        text = digits[rest] + text
        if not number:
            return text


class ChatStore:
    """Per-chat state in memory, with an expiry, and saved to a JSON file only when asked.

    Args:
        expiry (float): Seconds without a message after which a chat counts as expired.
        path (str | Path | None): A JSON file to load at start and save to; None keeps
            everything in memory only.
    """

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
                str(chat_id): {"seen": state.seen, "buttons": state.buttons, "next_key": state.next_key}
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
                    next_key=int(saved["next_key"]),
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
    """Runs updates of different chats in parallel and the updates of one chat in order."""

    def __init__(self, max_concurrent_updates: int = MAX_CONCURRENT_UPDATES) -> None:
        super().__init__(max_concurrent_updates)
        self._locks: dict[int, asyncio.Lock] = {}
        self._users: dict[int, int] = {}

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        """Await ``coroutine`` once every earlier update of the same chat is done."""
        chat = update.effective_chat if isinstance(update, Update) else None
        if chat is None:
            await coroutine
            return
        lock = self._locks.setdefault(chat.id, asyncio.Lock())
        self._users[chat.id] = self._users.get(chat.id, 0) + 1
        try:
            async with lock:
                await coroutine
        finally:
            self._users[chat.id] -= 1
            if not self._users[chat.id]:
                del self._users[chat.id], self._locks[chat.id]

    async def initialize(self) -> None:
        """Nothing to set up."""

    async def shutdown(self) -> None:
        """Nothing to release."""


class RetryingRateLimiter(AIORateLimiter):
    """Telegram's limits for outgoing requests, retrying 429s and network errors.

    :class:`~telegram.ext.AIORateLimiter` keeps the bot below about 30 messages a second overall
    and 20 a minute in each group and waits out a 429's ``retry_after``; this adds a few retries,
    with a short back-off, for requests that failed on the network. Log lines name the method and
    the error class only.
    """

    def __init__(self, *, network_retries: int = NETWORK_RETRIES, backoff: float = 0.5, **kwargs: Any):
        super().__init__(**kwargs)
        self._network_retries = network_retries
        self._backoff = backoff

    async def process_request(
        self,
        callback: Callable[..., Any],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> Any:
        """Send through the rate limiter; retry network errors other than Bad Request."""
        attempt = 0
        while True:
            try:
                return await super().process_request(callback, args, kwargs, endpoint, data, rate_limit_args)
            except NetworkError as err:
                attempt += 1
                if isinstance(err, BadRequest) or attempt > self._network_retries:
                    raise
                logger.warning(
                    "Network error on %s (%s); retry %d of %d.",
                    endpoint,
                    type(err).__name__,
                    attempt,
                    self._network_retries,
                )
                await asyncio.sleep(self._backoff * attempt)
