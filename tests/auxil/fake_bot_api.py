"""A fake Telegram Bot API server on 127.0.0.1, and a thread that runs the real bot against it.

The real python-telegram-bot client talks HTTP to :class:`FakeBotAPI` exactly as it would to
Telegram: ``POST <root>/bot<TOKEN>/<method>`` with form-encoded parameters (every non-string value
JSON-encoded), answered with ``{"ok": true, "result": ...}`` or an error status. Tests push updates
(messages, edits, button presses, inline queries), read back every call the bot made, and make
chosen calls fail (409, 429, 5xx...).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from telegram.ext import Application

from bot.telegram import ALLOWED_UPDATES

__all__ = ["BOT_USER", "TOKEN", "USER_NAME", "BotThread", "Call", "FakeBotAPI"]

#: A token of the real shape (the bot id, a colon, 35 characters), accepted by the fake.
TOKEN = "7000000001:AAHfakeTokenForTestsOnly_0123456789xyz"
#: The first name of every person in the fake chats (tests check it never reaches a log).
USER_NAME = "Quenby"
BOT_USER = {"id": 7000000001, "is_bot": True, "first_name": "CGT Test", "username": "cgt_test_bot"}

# Parameters PTB sends as raw strings; every other value is JSON inside the form field.
_RAW = {"text", "caption", "callback_query_id", "inline_query_id", "action", "parse_mode", "next_offset"}
_DESCRIPTIONS = {
    400: "Bad Request: fake failure",
    401: "Unauthorized",
    403: "Forbidden: bot was blocked by the user",
    409: "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
    429: "Too Many Requests: retry after {retry_after}",
    502: "Bad Gateway",
}
_PATH = re.compile(r"/bot(?P<token>[^/]+)/(?P<method>\w+)")


@dataclass
class Call:
    """One request the bot made: the method, its decoded parameters, the status it got."""

    method: str
    params: dict[str, Any]
    status: int
    at: float = field(default_factory=time.monotonic)

    @property
    def chat_id(self) -> Any:
        """The ``chat_id`` parameter, if any."""
        return self.params.get("chat_id")

    @property
    def text(self) -> str:
        """The ``text`` parameter ('' if none)."""
        return self.params.get("text", "")

    @property
    def buttons(self) -> list[tuple[str, str]]:
        """(label, callback data) of every inline button of the call, row by row."""
        markup = self.params.get("reply_markup") or {}
        return [
            (button["text"], button.get("callback_data", ""))
            for row in markup.get("inline_keyboard", [])
            for button in row
        ]


@dataclass
class _Fault:
    method: str
    status: int
    times: int
    chat_id: int | None
    retry_after: int | None
    description: str


class FakeBotAPI:
    """A Bot API server in a thread, with updates to hand out and a log of every call.

    Args:
        token (str): The only token the server accepts; any other gets 401 Unauthorized.
        max_poll (float): The longest a getUpdates call waits, whatever timeout it asks for.
    """

    def __init__(self, token: str = TOKEN, max_poll: float = 30.0) -> None:
        self.token = token
        self.max_poll = max_poll
        self._cond = threading.Condition()
        self._updates: list[dict[str, Any]] = []
        self._calls: list[Call] = []
        self._faults: list[_Fault] = []
        self._chat_types: dict[int, str] = {}
        self._sent: dict[int, dict[str, Any]] = {}
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1)
        self._query_ids = itertools.count(1)
        self._closed = False
        self._closing = threading.Event()  # set by stop(): cuts short a slow acknowledgement
        self._outage_until = 0.0
        self._outage_spares: tuple[str, ...] = ()
        self._slow: dict[tuple[str, int | None], float] = {}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- life cycle -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The server root to give the bot as its API URL."""
        assert self._server is not None, "start the server first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeBotAPI:
        """Listen on a port of 127.0.0.1 that the system picks (port 0), so no other can take it."""
        api = self

        class Handler(_Handler):
            fake = api

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-bot-api",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Wake every waiting long poll, stop listening, and end every request thread.

        Connections a client keeps open are shut, so no thread of the server outlives the test.

        Raises:
            AssertionError: Some thread of the server was still running after ``timeout`` seconds.
        """
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._closing.set()
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        left = server.end_requests(timeout)
        assert self._thread is not None
        self._thread.join(timeout)
        if self._thread.is_alive():
            left += 1
        if left:
            raise AssertionError(
                f"{left} thread(s) of the fake Bot API server still ran {timeout} s after stop"
            )

    def __enter__(self) -> FakeBotAPI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- updates the bot will receive -------------------------------------------------------

    def push(self, **update: Any) -> int:
        """Queue one update (``message=...``, ``callback_query=...``); RETURNS its update_id."""
        with self._cond:
            update_id = next(self._update_ids)
            self._updates.append({"update_id": update_id, **update})
            self._cond.notify_all()
        return update_id

    def take_updates(self) -> list[dict[str, Any]]:
        """Remove and RETURN the queued updates, in order: to post them to a webhook instead."""
        with self._cond:
            updates, self._updates = self._updates, []
        return updates

    def send(
        self,
        chat_id: int,
        text: str | None = None,
        *,
        chat_type: str = "private",
        user_id: int | None = None,
        reply_to_bot: bool = False,
        edited_id: int | None = None,
        **fields: Any,
    ) -> int:
        """A person sends a message (or edits message ``edited_id``); RETURNS its message_id.

        Commands get a ``bot_command`` entity and ``@username`` a ``mention`` entity, as
        Telegram adds them. Extra ``fields`` (``sticker=...``, ``photo=...``) go into the message.
        """
        message = self._message(chat_id, chat_type, user_id, edited_id)
        if text is not None:
            message["text"] = text
            if _entities(text):
                message["entities"] = _entities(text)
        if reply_to_bot:
            message["reply_to_message"] = {**self._message(chat_id, chat_type, None, None), "from": BOT_USER}
            message["reply_to_message"]["text"] = "An earlier answer."
        message.update(fields)
        if edited_id is None:
            self.push(message=message)
        else:
            self.push(edited_message={**message, "edit_date": int(time.time())})
        return message["message_id"]

    def sticker(self, chat_id: int, **kwargs: Any) -> int:
        """A person sends a sticker."""
        sticker = {
            "file_id": "sticker-1",
            "file_unique_id": "s1",
            "type": "regular",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
        }
        return self.send(chat_id, sticker=sticker, **kwargs)

    def photo(self, chat_id: int, caption: str | None = None, **kwargs: Any) -> int:
        """A person sends a photo, with ``caption`` if given."""
        extra: dict[str, Any] = {
            "photo": [{"file_id": "photo-1", "file_unique_id": "p1", "width": 90, "height": 90}]
        }
        if caption is not None:
            extra["caption"] = caption
        return self.send(chat_id, **extra, **kwargs)

    def voice(self, chat_id: int, **kwargs: Any) -> int:
        """A person sends a voice message."""
        return self.send(
            chat_id, voice={"file_id": "voice-1", "file_unique_id": "v1", "duration": 3}, **kwargs
        )

    def press(self, chat_id: int, data: str, *, message_id: int | None = None) -> str:
        """A person presses a button with callback ``data`` under bot message ``message_id``.

        RETURNS (str): The callback query id, which answerCallbackQuery must name.
        """
        query_id = f"cq{next(self._query_ids)}"
        with self._cond:
            sent = self._sent.get(message_id) if message_id is not None else None
        message = sent or {**self._message(chat_id, self._chat_types.get(chat_id, "private"), None, None)}
        message = {**message, "from": BOT_USER, "text": message.get("text", "Buttons")}
        user = {"id": chat_id if chat_id > 0 else 1000, "is_bot": False, "first_name": USER_NAME}
        self.push(
            callback_query={
                "id": query_id,
                "from": user,
                "chat_instance": f"ci{chat_id}",
                "data": data,
                "message": message,
            }
        )
        return query_id

    def inline(self, query: str, *, user_id: int = 4242) -> str:
        """A person types ``@bot query`` in some chat; RETURNS the inline query id."""
        query_id = f"iq{next(self._query_ids)}"
        user = {"id": user_id, "is_bot": False, "first_name": USER_NAME}
        self.push(inline_query={"id": query_id, "from": user, "query": query, "offset": ""})
        return query_id

    # -- faults -----------------------------------------------------------------------------

    def fail(
        self,
        method: str,
        status: int,
        *,
        times: int = 1,
        chat_id: int | None = None,
        retry_after: int | None = None,
        description: str | None = None,
    ) -> None:
        """Answer the next ``times`` calls of ``method`` (to ``chat_id``, if given) with ``status``."""
        text = description or _DESCRIPTIONS.get(status, "Fake failure").format(retry_after=retry_after)
        with self._cond:
            self._faults.append(_Fault(method, status, times, chat_id, retry_after, text))

    def clear_faults(self) -> None:
        """Forget every failure set with :meth:`fail` that has not happened yet."""
        with self._cond:
            self._faults.clear()

    def outage(self, seconds: float, *, spare: tuple[str, ...] = ("getUpdates",)) -> None:
        """Answer every call but those of ``spare`` with 502 Bad Gateway for ``seconds``."""
        with self._cond:
            self._outage_until = time.monotonic() + seconds
            self._outage_spares = spare

    def slow(self, method: str, seconds: float, *, chat_id: int | None = None) -> None:
        """Carry out ``method`` (to ``chat_id``) at once, but answer only after ``seconds``."""
        with self._cond:
            self._slow[(method, chat_id)] = seconds

    # -- what the bot did -------------------------------------------------------------------

    def calls(
        self, method: str | None = None, chat_id: int | None = None, *, ok: bool | None = None
    ) -> list[Call]:
        """The calls so far, in order, filtered by method, chat and success."""
        with self._cond:
            calls = list(self._calls)
        return [
            call
            for call in calls
            if (method is None or call.method == method)
            and (chat_id is None or call.chat_id == chat_id)
            and (ok is None or (call.status == 200) == ok)
        ]

    def messages(self, chat_id: int) -> list[Call]:
        """The messages delivered to ``chat_id`` (successful sendMessage calls), in order."""
        return self.calls("sendMessage", chat_id, ok=True)

    def wait_for(self, condition: Callable[[], Any], timeout: float = 10.0, what: str = "a condition") -> Any:
        """Block until ``condition()`` is truthy; RETURNS its value. Fails the test after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                value = condition()
                if value:
                    return value
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
                self._cond.wait(min(remaining, 0.1))

    def wait_messages(self, chat_id: int, count: int, timeout: float = 10.0) -> list[Call]:
        """Block until ``chat_id`` got at least ``count`` messages; RETURNS them all."""
        messages = self.wait_for(
            lambda: (found := self.messages(chat_id)) and len(found) >= count and found,
            timeout,
            f"{count} message(s) to chat {chat_id}",
        )
        return list(messages)

    def wait_call(self, method: str, count: int = 1, timeout: float = 10.0, **filters: Any) -> list[Call]:
        """Block until ``method`` was called ``count`` times (with ``filters`` on its params)."""

        def matching() -> list[Call]:
            return [c for c in self.calls(method) if all(c.params.get(k) == v for k, v in filters.items())]

        return list(
            self.wait_for(lambda: len(matching()) >= count and matching(), timeout, f"{count} {method}")
        )

    # -- serving ----------------------------------------------------------------------------

    def handle(self, method: str, token: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Answer one request: (HTTP status, JSON body)."""
        if token != self.token:
            return self._record(method, params, 401, _error(401, _DESCRIPTIONS[401]))
        with self._cond:
            down = time.monotonic() < self._outage_until and method not in self._outage_spares
        if down:
            return self._record(method, params, 502, _error(502, _DESCRIPTIONS[502]))
        fault = self._take_fault(method, params)
        if fault is not None:
            body = _error(fault.status, fault.description)
            if fault.retry_after is not None:
                body["parameters"] = {"retry_after": fault.retry_after}
            return self._record(method, params, fault.status, body)
        if method == "getUpdates":
            self._record(method, params, 200, {})
            return 200, {"ok": True, "result": self._get_updates(params)}
        answer = getattr(self, f"_{method}", None)
        if answer is None:
            return self._record(method, params, 400, _error(400, f"Bad Request: the fake has no {method}"))
        answered = self._record(method, params, 200, {"ok": True, "result": answer(params)})
        with self._cond:
            delay = self._slow.get((method, params.get("chat_id")), self._slow.get((method, None), 0.0))
        self._closing.wait(delay)  # the call took effect; only its acknowledgement is late
        return answered

    def _record(
        self, method: str, params: dict[str, Any], status: int, body: dict[str, Any]
    ) -> tuple[int, Any]:
        with self._cond:
            self._calls.append(Call(method, params, status))
            self._cond.notify_all()
        return status, body

    def _take_fault(self, method: str, params: dict[str, Any]) -> _Fault | None:
        with self._cond:
            for fault in self._faults:
                if fault.method == method and fault.chat_id in (None, params.get("chat_id")):
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset = params.get("offset")
        deadline = time.monotonic() + min(float(params.get("timeout") or 0), self.max_poll)
        with self._cond:
            while True:
                if offset is not None:
                    self._updates = [u for u in self._updates if u["update_id"] >= offset]
                if self._updates or self._closed or time.monotonic() >= deadline:
                    return list(self._updates[: int(params.get("limit") or 100)])
                self._cond.wait(deadline - time.monotonic())

    def _message(
        self, chat_id: int, chat_type: str, user_id: int | None, message_id: int | None
    ) -> dict[str, Any]:
        with self._cond:
            self._chat_types[chat_id] = chat_type
            number = message_id if message_id is not None else next(self._message_ids)
        chat: dict[str, Any] = {"id": chat_id, "type": chat_type}
        chat.update({"first_name": USER_NAME} if chat_type == "private" else {"title": "Care group"})
        sender = user_id if user_id is not None else (chat_id if chat_type == "private" else 1000)
        return {
            "message_id": number,
            "date": int(time.time()),
            "chat": chat,
            "from": {"id": sender, "is_bot": False, "first_name": USER_NAME},
        }

    def _bot_message(self, params: dict[str, Any], text: str) -> dict[str, Any]:
        chat_id = params["chat_id"]
        message = self._message(
            chat_id, self._chat_types.get(chat_id, "private"), None, params.get("message_id")
        )
        message.update({"from": BOT_USER, "text": text})
        with self._cond:
            self._sent[message["message_id"]] = message
        return message

    # Bot API methods the bot uses; each takes the decoded parameters and returns the result.

    def _getMe(self, params: dict[str, Any]) -> dict[str, Any]:
        return BOT_USER

    def _sendMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._bot_message(params, params["text"])

    def _editMessageText(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._bot_message(params, params["text"])

    def _true(self, params: dict[str, Any]) -> bool:
        return True

    _deleteWebhook = _setWebhook = _setMyCommands = _sendChatAction = _true
    _answerCallbackQuery = _answerInlineQuery = _close = _logOut = _true


class _Server(ThreadingHTTPServer):
    """A threading HTTP server that keeps hold of its request threads and their connections.

    The standard server forgets daemon request threads; a thread blocked reading a kept-alive
    connection would then outlive the test and log into its closed output.
    """

    daemon_threads = True
    # socketserver's default backlog is 5: a burst of new connections from workers answering many
    # chats at once overflowed it, and each dropped handshake stalled a send for many seconds
    # (TCP retries), long enough for the webhook call behind it to time out (issue #10).
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self._lock = threading.Lock()
        self._requests: dict[threading.Thread, socket.socket] = {}

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name="fake-bot-api-request",
            daemon=True,
        )
        with self._lock:
            self._requests[thread] = request
        thread.start()

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._lock:
                self._requests.pop(threading.current_thread(), None)

    def end_requests(self, timeout: float) -> int:
        """Shut every open connection and join its thread; RETURNS how many threads still run."""
        with self._lock:
            requests = dict(self._requests)
        for connection in requests.values():
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + timeout
        for thread in requests:
            thread.join(max(0.0, deadline - time.monotonic()))
        return sum(thread.is_alive() for thread in requests)


class _Handler(BaseHTTPRequestHandler):
    fake: FakeBotAPI
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        match = _PATH.fullmatch(urlsplit(self.path).path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if match is None:
            status, body = 404, _error(404, "Not Found")
        else:
            params = _decode(raw, self.headers.get("Content-Type", ""))
            status, body = self.fake.handle(match["method"], match["token"], params)
        payload = json.dumps(body).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except OSError:
            pass  # the client gave up on a long poll while stopping, or the server shut the socket

    do_GET = do_POST

    def log_message(self, format: str, *args: Any) -> None:
        """Keep request lines (which hold the token) out of the test output."""


def _decode(raw: bytes, content_type: str) -> dict[str, Any]:
    if not raw:
        return {}
    if content_type.startswith("application/json"):
        return json.loads(raw)
    params: dict[str, Any] = {}
    for key, values in parse_qs(raw.decode("utf-8"), keep_blank_values=True).items():
        value = values[-1]
        if key not in _RAW:
            with contextlib.suppress(ValueError):
                value = json.loads(value)
        params[key] = value
    return params


def _error(status: int, description: str) -> dict[str, Any]:
    return {"ok": False, "error_code": status, "description": description}


def _utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _entities(text: str) -> list[dict[str, Any]]:
    entities = []
    for match in re.finditer(r"(?<!\S)/\w+(?:@\w+)?|@\w+", text):
        kind = "bot_command" if match.group().startswith("/") else "mention"
        if kind == "bot_command" and match.start() != 0:
            continue
        offset = _utf16(text[: match.start()])
        entities.append({"type": kind, "offset": offset, "length": _utf16(match.group())})
    return entities


class BotThread:
    """Runs an :class:`~telegram.ext.Application` with long polling in a thread of its own.

    The steps are those of ``Application.run_polling`` (initialize, post_init, start polling with
    errors handed to the error handlers, start; then the reverse), without signal handlers. Every
    step of the reverse runs even when one before it failed, or when start-up failed half-way, so
    that no task, thread or connection of the bot outlives :meth:`stop`.

    Args:
        application (Application): Built by ``bot.telegram.build_application``.
        poll_timeout (int): The getUpdates long-poll timeout.
    """

    def __init__(self, application: Application, poll_timeout: int = 10) -> None:
        self.application = application
        self.poll_timeout = poll_timeout
        self._ready = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._main, name="bot-under-test", daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._error: BaseException | None = None
        self._stop_error: BaseException | None = None

    def start(self, timeout: float = 30.0) -> BotThread:
        """Start the bot and wait until it polls; re-raises a start-up error.

        Raises:
            AssertionError: It did not start within ``timeout`` seconds (it is stopped first).
        """
        self._thread.start()
        if not self._ready.wait(timeout):
            self.stop()
            raise AssertionError(f"the bot did not start within {timeout} s")
        if self._error is not None:
            self.stop()
            raise self._error
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop polling and shut the application down, as after SIGTERM; idempotent.

        Raises:
            AssertionError: The thread did not end within ``timeout`` seconds, even after its
                work was cancelled.
            Exception: What a step of the shutdown raised (once every step ran).
        """
        self._stopping.set()
        if not self._thread.is_alive():
            self._raise_stop_error()
            return
        self._thread.join(timeout)
        if self._thread.is_alive() and self._loop is not None and self._task is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                self._loop.call_soon_threadsafe(self._task.cancel)
            self._thread.join(5.0)
        if self._thread.is_alive():
            raise AssertionError(f"the bot did not stop within {timeout} s, even when cancelled")
        self._raise_stop_error()

    def _raise_stop_error(self) -> None:
        error, self._stop_error = self._stop_error, None
        if error is not None:
            raise error

    def __enter__(self) -> BotThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _main(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        app = self.application
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        post_init_ran = False
        try:
            await app.initialize()
            if app.post_init:
                post_init_ran = True  # its sweeper and Redis connection are undone by post_stop/shutdown
                await app.post_init(app)
            await app.updater.start_polling(
                timeout=self.poll_timeout,
                allowed_updates=list(ALLOWED_UPDATES),
                error_callback=lambda error: app.create_task(app.process_error(update=None, error=error)),
            )
            await app.start()
        except BaseException as error:
            self._error = error
        self._ready.set()
        try:
            # Polled rather than awaited on an asyncio.Event: stop() may come from any thread at
            # any time, even before this loop exists.
            while self._error is None and not self._stopping.is_set():
                await asyncio.sleep(0.02)
        finally:
            await self._shut_down(post_init_ran)

    async def _shut_down(self, post_init_ran: bool) -> None:
        """Every step of the shutdown, each whatever the one before did; the first error is kept."""
        app = self.application
        steps: list[Callable[[], Any]] = []
        if app.updater is not None:
            steps.append(lambda: app.updater.stop() if app.updater.running else _nothing())
        steps.append(lambda: app.stop() if app.running else _nothing())
        if post_init_ran and app.post_stop:
            steps.append(lambda: app.post_stop(app))
        steps.append(app.shutdown)
        if post_init_ran and app.post_shutdown:
            steps.append(lambda: app.post_shutdown(app))
        for step in steps:
            try:
                await step()
            except Exception as error:
                if self._stop_error is None and self._error is None:
                    self._stop_error = error


async def _nothing() -> None:
    """A shutdown step with nothing to do."""
