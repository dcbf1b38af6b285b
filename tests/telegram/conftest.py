"""Fixtures of the Telegram tests: a real redis-server on a free loopback port, with no persistence."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.telegram.webhook_workers import free_port

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
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen(
        [
            REDIS_SERVER,
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(workdir),
            "--protected-mode", "yes",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as conn:
                conn.sendall(b"PING\r\n")
                if conn.recv(16).startswith(b"+PONG"):
                    break
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail("redis-server did not start")
        time.sleep(0.05)
    try:
        yield f"redis://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def redis_url(redis_server: str) -> Iterator[str]:
    """The session's Redis server, emptied for this test, as a URL with a database number."""
    url = f"{redis_server}/1"
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()
    yield url
