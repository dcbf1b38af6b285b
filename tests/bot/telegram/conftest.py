"""Fixtures of the Telegram tests: a real redis-server on a free loopback port, with no persistence."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from bot import Assistant
from tests.auxil.fake_bot_api import BotThread, FakeBotAPI
from tests.bot.telegram.webhook_workers import Worker, start_redis, stop_process

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


@pytest.fixture(autouse=True)
def _clear_webhook_and_redis_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the developer's own webhook secret and Redis URL out of every test."""
    for name in ("TELEGRAM_WEBHOOK_SECRET", "CGT_BOT_REDIS_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server for the whole session; RETURNS its URL (``redis://127.0.0.1:PORT``).

    No persistence (``--save ''``, ``--appendonly no``); stopped at the end. Skipped only where the
    binary cannot be had, never in CI (``.ci/run`` installs it).
    """
    if not Path(REDIS_SERVER).exists():
        if os.environ.get("CI"):
            pytest.fail("redis-server is missing in CI: .ci/run should have installed it")
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    process, url = start_redis(tmp_path_factory.mktemp("redis"), REDIS_SERVER)
    try:
        yield url
    finally:
        stop_process(process)


@pytest.fixture
def redis_url(redis_server: str) -> Iterator[str]:
    """The session's Redis server, emptied for this test, as a URL with a database number."""
    url = f"{redis_server}/1"
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()
    yield url


@pytest.fixture
def workers(
    fake_api: FakeBotAPI, redis_url: str, tmp_path: Path, assistant: Assistant
) -> Iterator[Callable[..., list[Worker]]]:
    """Start webhook workers sharing ``redis_url`` (the assistant is built first, so they find
    the trained classifier cached); all are stopped after the test."""
    started: list[Worker] = []

    def start(count: int = 2) -> list[Worker]:
        new = [
            Worker(fake_api, redis_url, tmp_path / f"worker-{len(started) + i}.log").start()
            for i in range(count)
        ]
        started.extend(new)
        return [worker.wait_ready() for worker in new]

    yield start
    errors = []
    for worker in started:  # every one, even when one before it would not stop
        try:
            worker.stop()
        except AssertionError as error:
            errors.append(error)
    if errors:
        raise errors[0]


@pytest.fixture(params=["memory", "redis"])
def bot_options(request: pytest.FixtureRequest) -> dict[str, Any]:
    """How the bot keeps chat state: in its own memory, or in Redis."""
    if request.param == "memory":
        return {}
    return {"redis_url": request.getfixturevalue("redis_url")}


@pytest.fixture
def sources_bot(start_bot: Callable[..., BotThread], bot_options: dict[str, Any]) -> BotThread:
    return start_bot(**bot_options)
