"""Shared state in Redis (``--redis``): the real bot and a real redis-server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis

from bot import Assistant
from tests.auxil.fake_bot_api import USER_NAME, BotThread, FakeBotAPI
from tests.bot.telegram.test_telegram import TEXTS, answer_text, plain


def test_telegram_redis_polling_keeps_context_across_a_restart(
    fake_api: FakeBotAPI,
    start_bot: Callable[..., BotThread],
    new_chat: Callable[[], int],
    assistant: Assistant,
    redis_url: str,
) -> None:
    expected = answer_text(assistant, "what is zolgensma?", "how much does it cost?")
    chat = new_chat()
    first = start_bot(redis_url=redis_url)
    fake_api.send(chat, "what is zolgensma?")
    (overview,) = fake_api.wait_messages(chat, 1)
    first.stop()

    start_bot(redis_url=redis_url)
    fake_api.send(chat, "how much does it cost?")
    fake_api.press(chat, overview.buttons[0][1])
    _, cost, pressed = fake_api.wait_messages(chat, 3)
    assert [plain(overview), plain(cost)] == expected
    assert plain(pressed) != plain(TEXTS.please_ask_again) and "Zolgensma" in plain(pressed)

    keys = redis.Redis.from_url(redis_url, decode_responses=True).keys("*")
    assert f"cgt-bot:chat:{chat}" in keys and f"cgt-bot:context:{chat}" in keys


def test_telegram_redis_holds_no_text_expires_like_memory_and_forget_deletes(
    fake_api: FakeBotAPI,
    start_bot: Callable[..., BotThread],
    new_chat: Callable[[], int],
    redis_url: str,
) -> None:
    start_bot(redis_url=redis_url, expiry=600)
    chat = new_chat()
    fake_api.send(chat, "what is zolgensma?")
    fake_api.send(chat, "how much does it cost?")
    fake_api.wait_messages(chat, 2)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    keys = client.keys("*")
    assert {f"cgt-bot:chat:{chat}", f"cgt-bot:context:{chat}"} <= set(keys)
    kinds = ("cgt-bot:chat:", "cgt-bot:context:", "cgt-bot:update:", "cgt-bot:rate:", "cgt-bot:lock:")
    assert all(key.startswith(kinds) for key in keys)
    for key in keys:
        if key.startswith(kinds[:3]):
            assert 0 < client.ttl(key) <= 600, key  # the in-memory expiry
    stored = " ".join(client.get(key) or "" for key in keys)
    assert "how much" not in stored and "what is" not in stored and USER_NAME not in stored

    fake_api.send(chat, "/forget")
    fake_api.wait_messages(chat, 3)
    left = [key for kind in ("chat", "context") for key in client.keys(f"cgt-bot:{kind}:{chat}")]
    assert left == []


def test_telegram_redis_send_rate_is_shared_by_workers(redis_url: str) -> None:
    """Two workers' stores share one count: 12 sends at 5 a window need three windows."""
    import asyncio
    import time

    from bot.telegram.redis import RedisChatStore

    async def main() -> float:
        stores = [RedisChatStore(redis_url, 60.0), RedisChatStore(redis_url, 60.0)]
        for store in stores:
            await store.connect()
        started = time.monotonic()
        await asyncio.gather(*(stores[i % 2].take_slot("all", 5, 1.0) for i in range(12)))
        elapsed = time.monotonic() - started
        for store in stores:
            await store.close()
        return elapsed

    assert asyncio.run(main()) > 1.0


def test_telegram_redis_chat_lock_ends_when_a_renewal_swallows_its_cancellation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue #10: a renewal in progress that loses a cancellation must not hold the chat forever."""
    import asyncio
    import contextlib
    import threading

    import bot.telegram.redis as telegram_redis

    class SwallowingLock:
        """A lock whose renewal takes long and swallows a cancellation, as redis-py's once did."""

        renewals = 0

        def __init__(self, *args: object, **kwargs: object) -> None:
            pass

        async def acquire(self) -> bool:
            return True

        async def reacquire(self) -> bool:
            SwallowingLock.renewals += 1
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(10)
            return True

        async def release(self) -> None:
            pass

    monkeypatch.setattr(telegram_redis, "Lock", SwallowingLock)
    store = telegram_redis.RedisChatStore("redis://127.0.0.1:9/0", 60.0, lock_ttl=0.15)
    store._client = object()  # type: ignore[assignment]  # the fake lock never touches it

    async def main() -> None:
        async with store.chat_lock(1):
            await asyncio.sleep(0.2)  # the renewal (every 0.05 s) is under way when the block ends

    # On a thread of its own: with the bug the event loop never ends (its clean-up cancels the
    # renewer, which swallows that too), and the test must fail, not hang.
    runner = threading.Thread(target=asyncio.run, args=(main(),), name="lock-renewal-test", daemon=True)
    runner.start()
    runner.join(10)
    assert not runner.is_alive(), "the chat's lock block still waited for its renewer after 10 s"
    assert SwallowingLock.renewals == 1
