"""Webhook workers as real `cgt-bot telegram` processes, and a dispatcher that plays Telegram.

The dispatcher posts updates to the workers the way Telegram posts to a webhook behind a
round-robin load balancer: one chat's updates one after another, each once the last was
acknowledged with 200; chats side by side; a call that fails (refused, reset, not 200) is posted
again, to the next worker.
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any

from tests.auxil.fake_bot_api import TOKEN, FakeBotAPI

ROOT = Path(__file__).resolve().parents[2]
SECRET = "webhook-secret_for-tests-0123456789"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


def free_port() -> int:
    """A TCP port of 127.0.0.1 that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def command() -> list[str]:
    """The installed `cgt-bot` script, else `python -m bot` (the same `bot.cli:main`)."""
    script = shutil.which("cgt-bot")
    return [script] if script else [sys.executable, "-m", "bot"]


def post(port: int, path: str, body: bytes, secret: str | None, timeout: float = 60.0) -> int:
    """POST ``body`` to ``127.0.0.1:port``; RETURNS the HTTP status (raises OSError if none)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers[SECRET_HEADER] = secret
    try:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


class Worker:
    """One `cgt-bot telegram --webhook-url ... --listen ... --redis ...` process.

    Args:
        fake_api (FakeBotAPI): The Bot API server it talks to.
        redis_url (str | None): Shared state; None keeps state in the process.
        log (Path): Where its standard error goes.
        port (int | None): The port to listen on (a free one if None).
    """

    def __init__(
        self, fake_api: FakeBotAPI, redis_url: str | None, log: Path, port: int | None = None
    ) -> None:
        self.fake_api = fake_api
        self.redis_url = redis_url
        self.port = port or free_port()
        self.path = "/tg"
        self.log = log
        self.process: subprocess.Popen[str] | None = None
        self._stderr: IO[str] | None = None

    @property
    def webhook_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    def start(self) -> Worker:
        env = {
            **os.environ,
            "TELEGRAM_BOT_TOKEN": TOKEN,
            "TELEGRAM_WEBHOOK_SECRET": SECRET,
            "NO_PROXY": "127.0.0.1,localhost",
        }
        args = [*command(), "--log-level", "INFO", "telegram", "--api-url", self.fake_api.url]
        args += ["--webhook-url", self.webhook_url, "--listen", f"127.0.0.1:{self.port}"]
        if self.redis_url is not None:
            args += ["--redis", self.redis_url]
        self._stderr = self.log.open("a", encoding="utf-8")
        self.process = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=self._stderr, text=True
        )
        return self

    def wait_ready(self, timeout: float = 90.0) -> Worker:
        """Block until the worker takes connections."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                code = self.process.returncode
                raise AssertionError(f"the worker exited with {code}: {self.log.read_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError("the worker did not start in time")

    def kill(self) -> None:
        """SIGKILL: no clean-up at all."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, as a deployment would; RETURNS the exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._stderr is not None:
            self._stderr.close()
        return self.process.returncode


def chat_of(update: dict[str, Any]) -> int | None:
    """The chat an update belongs to (None for inline queries)."""
    message = update.get("message") or update.get("edited_message")
    if message is None and "callback_query" in update:
        message = update["callback_query"].get("message")
    return None if message is None else int(message["chat"]["id"])


class Dispatcher:
    """Plays Telegram in front of a round-robin load balancer over ``workers``.

    Args:
        workers (list[Worker]): The workers, taken in turn.
        secret (str): The secret sent with every call.
        threads (int): Chats posted to at once (Telegram's ``max_connections``).
    """

    def __init__(self, workers: list[Worker], secret: str = SECRET, threads: int = 40) -> None:
        self.workers = workers
        self.secret = secret
        self._turn = itertools.count()
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="telegram-dispatch")
        self._lock = threading.Condition()
        self._avoided: set[int] = set()
        self.in_flight: dict[int, int] = {}  # chat id -> worker index
        self.failed_posts = 0
        self.posts: list[tuple[int, int, int]] = []  # (update_id, worker index, status)

    def avoid(self, index: int) -> None:
        """Send no new calls to worker ``index`` (as a load balancer's health check would)."""
        with self._lock:
            self._avoided.add(index)

    def allow(self, index: int) -> None:
        with self._lock:
            self._avoided.discard(index)

    def in_flight_on(self, index: int) -> set[int]:
        """The chats whose call worker ``index`` has in hand."""
        with self._lock:
            return {chat for chat, worker in self.in_flight.items() if worker == index}

    def _next_worker(self) -> int:
        while True:
            with self._lock:
                index = next(self._turn) % len(self.workers)
                if index not in self._avoided or len(self._avoided) >= len(self.workers):
                    return index

    def deliver_one(self, update: dict[str, Any], deadline: float = 90.0) -> None:
        """Post ``update`` until a worker answers 200."""
        body = json.dumps(update).encode()
        chat = chat_of(update)
        give_up = time.monotonic() + deadline
        while time.monotonic() < give_up:
            index = self._next_worker()
            worker = self.workers[index]
            with self._lock:
                if chat is not None:
                    self.in_flight[chat] = index
            try:
                status = post(worker.port, worker.path, body, self.secret)
            except OSError:
                status = 0
            with self._lock:
                if chat is not None:
                    self.in_flight.pop(chat, None)
                self.posts.append((update["update_id"], index, status))
                if status != 200:
                    self.failed_posts += 1
            if status == 200:
                return
            time.sleep(0.05)
        raise AssertionError("an update was never acknowledged")

    def deliver(self, updates: list[dict[str, Any]]) -> list[Any]:
        """Start posting ``updates``: each chat's in order, chats side by side; RETURNS futures."""
        by_chat: dict[int | None, list[dict[str, Any]]] = defaultdict(list)
        for update in updates:
            by_chat[chat_of(update)].append(update)

        def run(chat_updates: list[dict[str, Any]]) -> None:
            for update in chat_updates:
                self.deliver_one(update)

        return [self._pool.submit(run, chat_updates) for chat_updates in by_chat.values()]

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
