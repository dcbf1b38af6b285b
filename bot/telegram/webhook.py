"""Webhook mode: ``cgt-bot telegram --webhook-url URL --listen HOST:PORT``.

Telegram posts each update to ``URL``; a reverse proxy with HTTPS passes it on to ``HOST:PORT``,
where this tornado server (tornado is what python-telegram-bot's own webhook server runs on, from
its ``webhooks`` extra) takes it at the path of ``URL``. As in python-telegram-bot's server, a
request without the right ``X-Telegram-Bot-Api-Secret-Token`` header gets 403 and is not
processed.

Unlike python-telegram-bot's server, the update is answered *before* the webhook call is
acknowledged: a worker that dies in between leaves the call unanswered, and Telegram (which sends
one chat's updates one after another, each after the last was acknowledged) delivers it again,
to whichever worker the load balancer picks. With ``--redis``, the chat's lock and the record of
answered updates make that second delivery wait for, or skip, the first.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
import signal
import sys
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import tornado.httpserver
import tornado.netutil
import tornado.web
from telegram import Update
from telegram.ext import Application

from bot.errors import UsageError

__all__ = [
    "SECRET_HEADER",
    "WebhookServer",
    "check_secret",
    "check_webhook_url",
    "parse_listen",
    "serve_webhook",
]

logger = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
MAX_BODY = 1 << 20  # bytes; an update is a few kilobytes
DRAIN_TIMEOUT = 30.0  # seconds to finish the updates in hand after a stop signal
_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")


def check_webhook_url(url: str) -> str:
    """Check the public address Telegram posts to, e.g. ``https://bot.example.org/tg``.

    Raises:
        UsageError: It is not an http(s) address.
    """
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError("The webhook URL must be a web address such as https://bot.example.org/tg.")
    return url.strip()


def check_secret(secret: str | None) -> str:
    """Check the webhook secret (1 to 256 of ``A-Za-z0-9_-``, as Telegram allows).

    Raises:
        UsageError: It is missing or has other characters.
    """
    if not secret:
        raise UsageError(
            "Webhook mode needs a secret: set TELEGRAM_WEBHOOK_SECRET (1 to 256 letters, digits, _ or -)."
        )
    if not _SECRET.fullmatch(secret):
        raise UsageError("TELEGRAM_WEBHOOK_SECRET may hold only letters, digits, _ and - (1 to 256).")
    return secret


def parse_listen(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8443`` for IPv6) as (host, port).

    Raises:
        UsageError: It is not HOST:PORT with a port from 0 to 65535.
    """
    host, _, port = listen.strip().rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or int(port) > 65535:
        raise UsageError("--listen must be HOST:PORT, such as 127.0.0.1:8443.")
    return host, int(port)


class _UpdateHandler(tornado.web.RequestHandler):
    """Takes one update: 403 without the secret, 400 for a body that is no update, else 200."""

    def initialize(self, server: WebhookServer) -> None:
        self.server = server

    async def post(self) -> None:
        server = self.server
        given = self.request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode(), server.secret.encode()):
            self.set_status(403)
            return
        try:
            data = json.loads(self.request.body)
            update = Update.de_json(data, server.application.bot)
        except (ValueError, TypeError, KeyError, AttributeError):
            self.set_status(400)
            return
        if update is None:
            self.set_status(400)
            return
        server.in_flight += 1
        try:
            await server.process(update)
        except Exception as err:  # unanswered: Telegram delivers it again
            logger.error(
                "Could not process an update (%s); asking Telegram to send it again.", type(err).__name__
            )
            self.set_status(500)
            return
        finally:
            server.in_flight -= 1
            server.changed.set()
        self.set_status(200)

    def get(self) -> None:
        self.set_status(405)


class WebhookServer:
    """The HTTP server of one webhook worker.

    Args:
        application (Application): The bot; its updates are processed by its update processor.
        path (str): The path updates are posted to (``/tg``).
        secret (str): The secret Telegram sends in :data:`SECRET_HEADER`.
    """

    def __init__(
        self, application: Application[Any, Any, Any, Any, Any, Any], path: str, secret: str
    ) -> None:
        self.application = application
        self.secret = secret
        self.in_flight = 0
        self.changed = asyncio.Event()
        app = tornado.web.Application(
            [(re.escape(path or "/"), _UpdateHandler, {"server": self})],
            log_function=lambda handler: None,  # no access log: nothing about callers or chats
        )
        self._http = tornado.httpserver.HTTPServer(app, max_body_size=MAX_BODY, xheaders=True)

    async def process(self, update: Update) -> None:
        """Answer ``update`` in the chat's turn, as polling would."""
        application = self.application
        await application.update_processor.process_update(update, application.process_update(update))

    def listen(self, host: str, port: int) -> int:
        """Start listening; RETURNS the port (useful with port 0)."""
        sockets = tornado.netutil.bind_sockets(port, address=host)
        self._http.add_sockets(sockets)
        return int(sockets[0].getsockname()[1])

    async def stop(self, timeout: float = DRAIN_TIMEOUT) -> None:
        """Stop taking updates and finish those in hand (for at most ``timeout`` seconds)."""
        self._http.stop()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.in_flight and loop.time() < deadline:
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), deadline - loop.time())
            except TimeoutError:
                break
        await self._http.close_all_connections()


async def serve_webhook(
    application: Application[Any, Any, Any, Any, Any, Any],
    url: str,
    host: str,
    port: int,
    secret: str,
    *,
    allowed_updates: list[str],
    announce: Callable[[int], str] | None = None,
) -> None:
    """Run one webhook worker until SIGTERM or Ctrl-C.

    Starts the application, registers ``url`` with ``setWebhook`` (with ``secret``), serves
    updates on ``host:port`` at the path of ``url``, and on a stop signal finishes the updates in
    hand and shuts down. Once it listens, ``announce(port)`` is printed to standard error, with
    the port it listens on: the one the system picked when ``port`` is 0.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await application.initialize()
    server: WebhookServer | None = None
    post_init_ran = False
    try:
        if application.post_init:
            post_init_ran = True  # its sweeper task must be stopped even if setWebhook fails
            await application.post_init(application)
        await application.bot.set_webhook(url, secret_token=secret, allowed_updates=allowed_updates)
        await application.start()
        server = WebhookServer(application, urlsplit(url).path or "/", secret)
        bound = server.listen(host, port)
        if announce is not None:
            print(announce(bound), file=sys.stderr, flush=True)
        await stop.wait()
    finally:
        if server is not None:
            await server.stop()
        if application.running:
            await application.stop()
        if post_init_ran and application.post_stop:
            await application.post_stop(application)
        await application.shutdown()
        if application.post_shutdown:
            await application.post_shutdown(application)
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
