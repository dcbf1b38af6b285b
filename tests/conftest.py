"""Shared fixtures: one Assistant per test session, and a guard against network access."""

from __future__ import annotations

import io
import itertools
import logging
import shutil
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot import Assistant
from bot.checks import DEFAULT_ROOTS, DataRoots
from bot.logging_setup import configure_logging
from bot.telegram import build_application
from tests.auxil.fake_bot_api import BotThread, FakeBotAPI

_LOOPBACK = ("127.", "::1", "localhost")


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any test that opens a connection beyond the loopback interface."""
    real_connect = socket.socket.connect

    def guarded_connect(self: socket.socket, address: object) -> object:
        host = address[0] if isinstance(address, tuple) else str(address)
        if isinstance(host, str) and not host.startswith(_LOOPBACK) and self.family != socket.AF_UNIX:
            raise RuntimeError(f"test tried to reach the network: {host}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)


STRAY_THREAD_GRACE = 5.0  # seconds a test's threads get to end after its fixtures are torn down


@pytest.fixture(autouse=True)
def _no_stray_threads() -> Iterator[None]:
    """Fail a test that leaves a thread running: a bot, server or worker that outlives its test
    goes on calling and logging into the next one (issue #10).

    Set up before, so torn down after, every fixture of the test that starts something.
    """
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + STRAY_THREAD_GRACE
    stray = [thread for thread in threading.enumerate() if thread not in before]
    for thread in stray:
        thread.join(max(0.0, deadline - time.monotonic()))
    alive = sorted(thread.name for thread in stray if thread.is_alive())
    if alive:
        pytest.fail(f"the test left {len(alive)} thread(s) running: {', '.join(alive)}", pytrace=False)


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Put logging back as it was: ``cgt-bot`` run in-process (``main([...])``) installs a handler
    on the test's captured standard error, which is closed once the test ends; a later log line
    from any thread then printed "--- Logging error ---" (issue #10)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {
        name: item.level
        for name, item in logging.Logger.manager.loggerDict.items()
        if isinstance(item, logging.Logger)
    }
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)
    for name, item in list(logging.Logger.manager.loggerDict.items()):
        if isinstance(item, logging.Logger):
            item.setLevel(levels.get(name, logging.NOTSET))


@pytest.fixture(autouse=True)
def _clear_telegram_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the developer's own Telegram settings out of every test."""
    for name in ("TELEGRAM_BOT_TOKEN", "TELEGRAM_API_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture
def data_roots(tmp_path: Path) -> DataRoots:
    """Copies of every packaged data root (knowledge, intents, front ends) to break on purpose."""
    copies = {}
    for name, root in vars(DEFAULT_ROOTS).items():
        copies[name] = tmp_path / name / root.name
        shutil.copytree(root, copies[name], ignore=shutil.ignore_patterns("__pycache__"))
    return DataRoots(**copies)


@pytest.fixture
def empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cache folder in place of the session's, for tests that fill or break one."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("CGT_BOT_CACHE", str(folder))
    return folder


@pytest.fixture(scope="session")
def assistant() -> Assistant:
    """The real assistant, with the real knowledge and intent files, built once."""
    return Assistant()


# -- Telegram: a fake Bot API server on 127.0.0.1 and the real bot polling it ------------------------

_chat_ids = itertools.count(1001)


@pytest.fixture
def new_chat() -> Callable[[], int]:
    """Fresh private chat ids: tests share the session-wide assistant but never a conversation."""
    return lambda: next(_chat_ids)


@pytest.fixture
def fake_api() -> Iterator[FakeBotAPI]:
    """A fake Telegram Bot API server on 127.0.0.1, stopped after the test."""
    with FakeBotAPI() as api:
        yield api


@pytest.fixture
def start_bot(assistant: Assistant, fake_api: FakeBotAPI) -> Iterator[Callable[..., BotThread]]:
    """Start the real bot against ``fake_api``: ``start_bot(other_assistant, expiry=...)``.

    Every bot started is stopped after the test, before the server.
    """
    running: list[BotThread] = []

    def start(bot_assistant: Any = None, **options: Any) -> BotThread:
        application = build_application(bot_assistant or assistant, fake_api.token, fake_api.url, **options)
        running.append(BotThread(application))
        return running[-1].start()  # a bot that fails to start is stopped by start() itself

    yield start
    errors = []
    for thread in reversed(running):  # every one, even when stopping one before it failed
        try:
            thread.stop()
        except Exception as error:
            errors.append(error)
    if errors:
        raise errors[0]


@pytest.fixture
def telegram_bot(start_bot: Callable[..., BotThread]) -> BotThread:
    """The real bot with the real assistant, polling ``fake_api``."""
    return start_bot()


class CapturedLogs(logging.Handler):
    """Every log record, unscrubbed, plus what the CLI's scrubbing handler printed."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.output = io.StringIO()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def text(self) -> str:
        """All captured lines: raw messages with their tracebacks, then the printed output."""
        lines = []
        for record in self.records:
            lines.append(f"{record.name} {record.levelname} {record.getMessage()}")
            if record.exc_info:
                lines.append("".join(traceback.format_exception(*record.exc_info)))
        return "\n".join(lines) + "\n" + self.output.getvalue()


@pytest.fixture
def telegram_logs() -> Iterator[CapturedLogs]:
    """Logging configured as ``cgt-bot --log-level DEBUG`` would, captured; restored afterwards."""
    root = logging.getLogger()
    names = ("httpx", "httpcore", "telegram")
    saved = (root.level, list(root.handlers), {name: logging.getLogger(name).level for name in names})
    captured = CapturedLogs()
    configure_logging("DEBUG", stream=captured.output)
    root.addHandler(captured)
    yield captured
    root.setLevel(saved[0])
    for handler in list(root.handlers):
        if handler not in saved[1]:
            root.removeHandler(handler)
    for name, level in saved[2].items():
        logging.getLogger(name).setLevel(level)
