"""Webhook workers as real `cgt-bot telegram` processes, and a dispatcher that plays Telegram.

The dispatcher posts updates to the workers the way Telegram posts to a webhook behind a
round-robin load balancer: one chat's updates one after another, each once the last was
acknowledged with 200; chats side by side; a call that fails (refused, reset, not 200) is posted
again, to the next worker.
"""

from __future__ import annotations

import contextlib
import http.client
import itertools
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict
from concurrent.futures import Future
from concurrent.futures import wait as wait_futures
from pathlib import Path
from typing import IO, Any

from tests.auxil.fake_bot_api import TOKEN, FakeBotAPI

ROOT = Path(__file__).resolve().parents[3]
SECRET = "webhook-secret_for-tests-0123456789"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


LISTENING = re.compile(r"listening on (?:\[[^\]]*\]|[^\s:]+):(\d+)")
READY_TIMEOUT = 60.0  # seconds for a worker to load the assistant and listen (about 5 s unloaded)
POST_TIMEOUT = 30.0  # seconds one webhook call may take; an answer takes well under one
DELIVER_DEADLINE = 60.0  # seconds an update is posted again until some worker acknowledges it
STOP_TIMEOUT = 45.0  # seconds from SIGTERM to exit: a worker drains its calls for up to 30 s
CLOSE_TIMEOUT = 10.0  # seconds the dispatcher's threads get to end once it is closed


def free_port() -> int:
    """A TCP port of 127.0.0.1 that was free a moment ago.

    Another process may take it before it is bound: servers that can bind port 0 do so instead
    (the fake Bot API, webhook workers); a redis-server that finds it taken is started again on
    another (:func:`start_redis`).
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_redis(
    workdir: Path, server: str = "redis-server", attempts: int = 5, timeout: float = 10.0
) -> tuple[subprocess.Popen[bytes], str]:
    """A redis-server on a free port of 127.0.0.1, with no persistence; RETURNS it and its URL.

    redis-server cannot be asked for port 0 (that turns TCP off), so a port taken between
    :func:`free_port` and the server's bind makes it exit, and it is started on another.

    Raises:
        AssertionError: It did not answer PING within ``timeout`` seconds ``attempts`` times.
    """
    for _ in range(attempts):
        port = free_port()
        process = subprocess.Popen(
            [
                server,
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
        deadline = time.monotonic() + timeout
        while process.poll() is None and time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        return process, f"redis://127.0.0.1:{port}"
            except OSError:
                pass
            time.sleep(0.05)
        stop_process(process)
    raise AssertionError(f"redis-server did not answer on 127.0.0.1 in {attempts} tries of {timeout} s")


def stop_process(process: subprocess.Popen[Any], timeout: float = 10.0) -> int:
    """SIGTERM, then SIGKILL after ``timeout`` seconds; RETURNS the exit code. Never hangs."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)
    return int(process.returncode)


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment for a `cgt-bot` process: this checkout's code first, loopback unproxied.

    The installed script may come from another checkout (an editable install of the main
    worktree); without this tree first on PYTHONPATH, a test of this tree would run that code.
    """
    paths = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "NO_PROXY": "127.0.0.1,localhost", **extra}


def command() -> list[str]:
    """The installed `cgt-bot` script, else `python -m bot` (the same `bot.cli:main`)."""
    script = shutil.which("cgt-bot")
    return [script] if script else [sys.executable, "-m", "bot"]


class _Connections:
    """The webhook calls in progress, so that closing can cut them short."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: set[http.client.HTTPConnection] = set()
        self.closed = False

    def post(self, port: int, path: str, body: bytes, secret: str | None, timeout: float) -> int:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        with self._lock:
            if self.closed:
                raise ConnectionAbortedError("the dispatcher is closed")
            self._open.add(connection)
        try:
            return _request(connection, path, body, secret)
        finally:
            with self._lock:
                self._open.discard(connection)
            connection.close()

    def close(self) -> None:
        with self._lock:
            self.closed = True
            connections = list(self._open)
        for connection in connections:
            if connection.sock is not None:
                with contextlib.suppress(OSError):
                    connection.sock.shutdown(socket.SHUT_RDWR)


def post(port: int, path: str, body: bytes, secret: str | None, timeout: float = POST_TIMEOUT) -> int:
    """POST ``body`` to ``127.0.0.1:port``; RETURNS the HTTP status (raises OSError if none)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        return _request(connection, path, body, secret)
    finally:
        connection.close()


def _request(connection: http.client.HTTPConnection, path: str, body: bytes, secret: str | None) -> int:
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers[SECRET_HEADER] = secret
    connection.request("POST", path, body=body, headers=headers)
    response = connection.getresponse()
    response.read()
    return response.status


class Worker:
    """One `cgt-bot telegram --webhook-url ... --listen ... --redis ...` process.

    It listens on a port the system picks (``--listen 127.0.0.1:0``), read back from the line it
    prints once it listens, so no other process can take the port first.

    Args:
        fake_api (FakeBotAPI): The Bot API server it talks to.
        redis_url (str | None): Shared state; None keeps state in the process.
        log (Path): Where its standard error goes.
    """

    #: The public address registered with setWebhook: a reverse proxy would pass calls on.
    webhook_url = "https://bot.example.org/tg"
    path = "/tg"

    def __init__(self, fake_api: FakeBotAPI, redis_url: str | None, log: Path) -> None:
        self.fake_api = fake_api
        self.redis_url = redis_url
        self.log = log
        self._port: int | None = None
        self._log_start = 0  # where this run's lines begin in a log that may hold earlier runs
        self.process: subprocess.Popen[str] | None = None
        self._stderr: IO[str] | None = None

    @property
    def port(self) -> int:
        """The port it listens on (after :meth:`wait_ready`)."""
        if self._port is None:
            raise AssertionError("the worker's port is known once wait_ready() returned")
        return self._port

    def start(self) -> Worker:
        # PYTHONFAULTHANDLER: a worker that hangs prints every thread's stack on SIGABRT (stop()).
        env = subprocess_env(TELEGRAM_BOT_TOKEN=TOKEN, TELEGRAM_WEBHOOK_SECRET=SECRET, PYTHONFAULTHANDLER="1")
        args = [*command(), "--log-level", "INFO", "telegram", "--api-url", self.fake_api.url]
        args += ["--webhook-url", self.webhook_url, "--listen", "127.0.0.1:0"]
        if self.redis_url is not None:
            args += ["--redis", self.redis_url]
        self._stderr = self.log.open("a", encoding="utf-8")
        self.process = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=self._stderr, text=True
        )
        self._log_start = self.log.stat().st_size
        return self

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> Worker:
        """Block until the worker listens (it says on which port).

        Raises:
            AssertionError: It exited, or did not listen within ``timeout`` seconds (its log is
                quoted).
        """
        assert self.process is not None, "start the worker first"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.log.open(encoding="utf-8") as handle:
                handle.seek(self._log_start)
                found = LISTENING.search(handle.read())
            if found:
                self._port = int(found.group(1))
                return self
            if self.process.poll() is not None:
                raise AssertionError(f"the worker exited with {self.process.returncode}: {self._log_tail()}")
            time.sleep(0.05)
        raise AssertionError(f"the worker did not listen within {timeout} s: {self._log_tail()}")

    def _log_tail(self, size: int = 2000) -> str:
        return self.log.read_text(encoding="utf-8")[-size:] or "(its log is empty)"

    def kill(self) -> None:
        """SIGKILL: no clean-up at all."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)
        self._close_log()

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM, as a deployment would; RETURNS the exit code.

        Raises:
            AssertionError: It was still running ``timeout`` seconds later; it was then made to
                print its threads' stacks (SIGABRT) and killed, and the message quotes its log.
        """
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.send_signal(signal.SIGABRT)
                try:
                    self.process.wait(5)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(10)
                self._close_log()
                raise AssertionError(
                    f"the worker did not stop within {timeout} s of SIGTERM: {self._log_tail(8000)}"
                ) from None
        self._close_log()
        return self.process.returncode

    def _close_log(self) -> None:
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None


def chat_of(update: dict[str, Any]) -> int | None:
    """The chat an update belongs to (None for inline queries)."""
    message = update.get("message") or update.get("edited_message")
    if message is None and "callback_query" in update:
        message = update["callback_query"].get("message")
    return None if message is None else int(message["chat"]["id"])


class Dispatcher:
    """Plays Telegram in front of a round-robin load balancer over ``workers``.

    Every wait is bounded: a call takes at most ``POST_TIMEOUT`` seconds, an update is posted
    again for at most ``DELIVER_DEADLINE``, and :meth:`close` cuts the calls in progress short and
    joins every thread of the dispatcher, or fails saying how many are left.

    Args:
        workers (list[Worker]): The workers, taken in turn.
        secret (str): The secret sent with every call.
        threads (int): Chats posted to at once (Telegram's ``max_connections``).
    """

    def __init__(self, workers: list[Worker], secret: str = SECRET, threads: int = 40) -> None:
        self.workers = workers
        self.secret = secret
        self._turn = itertools.count()
        self._lock = threading.Condition()
        self._avoided: set[int] = set()
        self._connections = _Connections()
        self._jobs: queue.SimpleQueue[tuple[Future[None], list[dict[str, Any]]] | None] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._work, name=f"telegram-dispatch-{i}", daemon=True)
            for i in range(threads)
        ]
        for thread in self._threads:
            thread.start()
        self.in_flight: dict[int, int] = {}  # chat id -> worker index
        self.failed_posts = 0
        self.posts: list[tuple[int, int, int]] = []  # (update_id, worker index, status)

    def __enter__(self) -> Dispatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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

    def deliver_one(self, update: dict[str, Any], deadline: float = DELIVER_DEADLINE) -> None:
        """Post ``update`` until a worker answers 200.

        Raises:
            AssertionError: No worker acknowledged it within ``deadline`` seconds, or the
                dispatcher was closed.
        """
        body = json.dumps(update).encode()
        chat = chat_of(update)
        give_up = time.monotonic() + deadline
        statuses: list[int] = []
        while time.monotonic() < give_up and not self._connections.closed:
            index = self._next_worker()
            worker = self.workers[index]
            with self._lock:
                if chat is not None:
                    self.in_flight[chat] = index
            try:
                status = self._connections.post(worker.port, worker.path, body, self.secret, POST_TIMEOUT)
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
            statuses.append(status)
            time.sleep(0.05)
        why = "the dispatcher was closed" if self._connections.closed else f"{deadline} s passed"
        raise AssertionError(
            f"update {update['update_id']} was never acknowledged ({why}; statuses {statuses[-5:]})"
        )

    def deliver(self, updates: list[dict[str, Any]]) -> list[Future[None]]:
        """Start posting ``updates``: each chat's in order, chats side by side; RETURNS futures."""
        by_chat: dict[int | None, list[dict[str, Any]]] = defaultdict(list)
        for update in updates:
            by_chat[chat_of(update)].append(update)
        futures = []
        for chat_updates in by_chat.values():
            future: Future[None] = Future()
            self._jobs.put((future, chat_updates))
            futures.append(future)
        return futures

    @staticmethod
    def wait(futures: list[Future[None]], timeout: float) -> None:
        """Block until every chat's updates were delivered; re-raise the first failure.

        Raises:
            AssertionError: Some chats were not done within ``timeout`` seconds (how many is said).
        """
        done, pending = wait_futures(futures, timeout)
        for future in done:
            future.result()
        if pending:
            raise AssertionError(
                f"{len(pending)} of {len(futures)} chats were not delivered within {timeout} s"
            )

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            future, chat_updates = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                for update in chat_updates:
                    self.deliver_one(update)
            except BaseException as error:
                future.set_exception(error)
            else:
                future.set_result(None)

    def close(self, timeout: float = CLOSE_TIMEOUT) -> None:
        """Stop posting, cut the calls in progress short, and join every thread.

        Raises:
            AssertionError: Some thread was still running after ``timeout`` seconds.
        """
        self._connections.close()
        for _ in self._threads:
            self._jobs.put(None)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        alive = sum(thread.is_alive() for thread in self._threads)
        # Jobs no thread took are cancelled, so nobody waits on their futures.
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                job[0].cancel()
        if alive:
            raise AssertionError(f"{alive} dispatcher thread(s) still ran {timeout} s after close")
