"""Shared state in Redis, for several workers on one bot token (``cgt-bot telegram --redis URL``).

Everything the in-memory :class:`~bot.telegram.state.ChatStore` keeps about a chat lives here
instead, under keys that expire after the same idle time: the chat's button keys (with the
sources behind its "Sources" buttons) and flood counter (``chat:<id>``), the assistant's
conversation context (``context:<id>``, the subject of the conversation: product, condition and
topic ids, never a message), the updates already answered (``update:<update_id>``), a lock per
chat (``lock:<id>``) and the send-rate counters (``rate:...``). Every key starts with
:data:`PREFIX`.

The client is redis-py's asyncio client, made on the bot's own event loop by :meth:`connect`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import math
import time
from collections import deque
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.asyncio.lock import Lock
from redis.exceptions import LockError, RedisError

from bot.errors import CgtBotError, UsageError
from bot.session import Context
from bot.telegram.state import ChatState, saved_sources

__all__ = ["LOCK_TTL", "PREFIX", "RedisChatStore", "context_from_json", "context_to_json", "redis_where"]

logger = logging.getLogger(__name__)

PREFIX = "cgt-bot:"
LOCK_TTL = 5.0  # seconds a chat's lock outlives a dead worker; renewed while the chat is worked on
LOCK_POLL = 0.02  # seconds between tries for a chat's lock held by another worker


def redis_where(url: str) -> str:
    """``url`` without user name or password, fit for an error line."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname or ''}{port}{parts.path}"


def check_redis_url(url: str) -> str:
    """Check a Redis URL such as ``redis://127.0.0.1:6379/0``.

    Raises:
        UsageError: ``url`` is not a redis:// or rediss:// address.
    """
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix") or not (parts.hostname or parts.path):
        raise UsageError("The Redis URL must look like redis://HOST:PORT/DB.")
    return url


def context_to_json(context: Context) -> str | None:
    """The context as JSON; None when it holds nothing worth keeping (a fresh context)."""
    data = dataclasses.asdict(context)
    data.pop("updated", None)  # this process's monotonic clock: meaningless elsewhere
    fresh = dataclasses.asdict(Context())
    fresh.pop("updated", None)
    return None if data == fresh else json.dumps(data, separators=(",", ":"))


def context_from_json(text: str) -> Context:
    """A context saved by :func:`context_to_json` (fields this version does not know are dropped)."""
    data = json.loads(text)
    known = {f.name for f in dataclasses.fields(Context)}
    return Context(**{name: value for name, value in data.items() if name in known and name != "updated"})


class RedisChatStore:
    """Per-chat state in Redis, shared by every worker, expiring after ``expiry`` idle seconds.

    Args:
        url (str): The Redis server, ``redis://HOST:PORT/DB``.
        expiry (float): Seconds without a message after which a chat's keys expire.
        lock_ttl (float): Seconds a chat's lock lasts unless renewed (it is renewed while held).
    """

    shared = True
    path = None  # nothing is written to a local file

    def __init__(self, url: str, expiry: float, *, lock_ttl: float = LOCK_TTL) -> None:
        self.url = check_redis_url(url)
        self.expiry = expiry
        self.lock_ttl = lock_ttl
        self._client: aioredis.Redis | None = None

    @property
    def client(self) -> aioredis.Redis:
        """The connected client (after :meth:`connect`)."""
        if self._client is None:
            raise RuntimeError("RedisChatStore.connect() was not awaited")
        return self._client

    @property
    def _ttl(self) -> int:
        return max(1, math.ceil(self.expiry))

    # -- life cycle -------------------------------------------------------------------------

    async def connect(self) -> None:
        """Connect on the running event loop and check the server answers.

        Raises:
            CgtBotError: The server cannot be reached (the line names the server, not a password).
        """
        client = aioredis.from_url(self.url, decode_responses=True, health_check_interval=30)
        try:
            await client.ping()
        except (RedisError, OSError) as err:
            await client.aclose()
            raise CgtBotError(
                f"Could not reach Redis at {redis_where(self.url)} ({type(err).__name__}); "
                "check --redis or CGT_BOT_REDIS_URL."
            ) from None
        self._client = client

    async def close(self) -> None:
        """Close the connections."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # -- per-chat state ---------------------------------------------------------------------

    def _key(self, kind: str, chat_id: int | str) -> str:
        return f"{PREFIX}{kind}:{chat_id}"

    async def load(self, chat_id: int) -> ChatState | None:
        """The chat's state, or None if it has none (never had or expired)."""
        raw = await self.client.get(self._key("chat", chat_id))
        if raw is None:
            return None
        data = json.loads(raw)
        return ChatState(
            seen=float(data["seen"]),
            buttons={str(k): str(v) for k, v in data["buttons"].items()},
            recent=deque(float(at) for at in data["recent"]),
            warned=bool(data["warned"]),
            sources=saved_sources(data.get("sources", {})),  # none in state of older versions
        )

    async def put(self, chat_id: int, state: ChatState) -> None:
        """Write the chat's state; it expires ``expiry`` seconds after this write."""
        data = {
            "seen": state.seen,
            "buttons": state.buttons,
            "recent": list(state.recent),
            "warned": state.warned,
            "sources": state.sources,
        }
        await self.client.set(
            self._key("chat", chat_id), json.dumps(data, separators=(",", ":")), ex=self._ttl
        )

    async def load_context(self, chat_id: int) -> Context | None:
        """The assistant's conversation context of the chat, or None."""
        raw = await self.client.get(self._key("context", chat_id))
        return None if raw is None else context_from_json(str(raw))

    async def put_context(self, chat_id: int, context: Context | None) -> None:
        """Write (or, for None or a fresh context, delete) the chat's conversation context."""
        text = None if context is None else context_to_json(context)
        key = self._key("context", chat_id)
        if text is None:
            await self.client.delete(key)
        else:
            await self.client.set(key, text, ex=self._ttl)

    async def drop(self, chat_id: int) -> None:
        """Delete every key held about the chat (``/forget``)."""
        await self.client.delete(self._key("chat", chat_id), self._key("context", chat_id))

    async def drop_context(self, chat_id: int) -> None:
        """Delete the chat's conversation context (``/reset``)."""
        await self.client.delete(self._key("context", chat_id))

    # -- updates: answered once, a chat at a time -------------------------------------------

    async def answered(self, update_id: int) -> bool:
        """Whether some worker already answered ``update_id``."""
        return bool(await self.client.exists(self._key("update", update_id)))

    async def mark_answered(self, update_id: int) -> None:
        """Record that ``update_id`` was answered; the record expires with the chat state."""
        await self.client.set(self._key("update", update_id), "1", ex=self._ttl)

    async def claim(self, update_id: int) -> bool:
        """Record ``update_id`` as answered unless it already was; RETURNS True for the first."""
        return bool(await self.client.set(self._key("update", update_id), "1", ex=self._ttl, nx=True))

    @contextlib.asynccontextmanager
    async def chat_lock(self, chat_id: int) -> AsyncIterator[None]:
        """Hold the chat's lock across workers, renewing it until the block ends.

        A worker that dies holding it frees it after ``lock_ttl`` seconds.
        """
        lock = Lock(
            self.client,
            self._key("lock", chat_id),
            timeout=self.lock_ttl,
            sleep=LOCK_POLL,
            thread_local=False,  # the token belongs to this task, not to the thread
        )
        await lock.acquire()
        done = asyncio.Event()
        renewer = asyncio.create_task(self._renew(lock, done), name="cgt-bot:lock-renewal")
        try:
            yield
        finally:
            # The renewer is told to end rather than cancelled: a cancellation that arrived while
            # redis-py ran the renewal was lost (seen with redis-py 8.2 on Python 3.11: the task
            # stayed "cancelling" and went on renewing), so the chat stayed locked for good and
            # this block waited for the renewer forever (issue #10).
            done.set()
            finished, _ = await asyncio.wait({renewer}, timeout=self.lock_ttl)
            if not finished:  # a renewal stuck on Redis: let it go, the lock expires by itself
                renewer.cancel()
            with contextlib.suppress(LockError, RedisError):
                await lock.release()

    async def _renew(self, lock: Lock, done: asyncio.Event) -> None:
        """Renew ``lock`` every third of its lifetime until ``done`` is set."""
        while not done.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), self.lock_ttl / 3)
            if done.is_set():
                return
            try:
                await lock.reacquire()
            except (LockError, RedisError):
                logger.warning("Lost a chat's lock in Redis while answering; carrying on.")
                return

    # -- the send rate of all workers together ----------------------------------------------

    async def take_slot(self, bucket: str, limit: int, window: float) -> None:
        """Wait until ``bucket`` has had fewer than ``limit`` sends in the current ``window``.

        Counted in Redis, so the limit holds for every worker together (fixed windows).
        """
        while True:
            now = time.time()
            slot = math.floor(now / window)
            key = f"{PREFIX}rate:{bucket}:{slot}"
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.incr(key)
                pipe.expire(key, max(1, math.ceil(window)) + 1)
                count, _ = await pipe.execute()
            if int(count) <= limit:
                return
            await asyncio.sleep(max(0.001, (slot + 1) * window - now))
