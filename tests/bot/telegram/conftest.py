"""Fixtures of the Telegram tests: a real redis-server on a free loopback port, with no persistence."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.bot.telegram.webhook_workers import start_redis, stop_process

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
