"""The Telegram application: the front end's handlers put together, :func:`build_application` and
:func:`run` (what ``cgt-bot telegram`` calls).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, TypeAlias
from urllib.parse import urlsplit

from telegram import Bot, BotCommand, LinkPreviewOptions, Update
from telegram.constants import ParseMode
from telegram.error import BadRequest, Conflict, Forbidden, InvalidToken, NetworkError, TelegramError
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    Defaults,
    InlineQueryHandler,
    MessageHandler,
    filters,
)

from bot.errors import CgtBotError, UsageError
from bot.logging_setup import scrub
from bot.telegram.commands import Commands
from bot.telegram.inline import InlineMode
from bot.telegram.redis import RedisChatStore, check_redis_url, redis_where
from bot.telegram.state import ChatStore, PerChatUpdateProcessor, RetryingRateLimiter
from bot.telegram.texts import COMMANDS, Texts, load_texts
from bot.telegram.webhook import check_secret, check_webhook_url, parse_listen, serve_webhook

if TYPE_CHECKING:
    from bot import Assistant

__all__ = ["ALLOWED_UPDATES", "CHAT_EXPIRY", "TelegramFrontEnd", "api_root", "build_application", "run"]

logger = logging.getLogger(__name__)

#: The update types the bot asks Telegram for.
ALLOWED_UPDATES = ("message", "edited_message", "callback_query", "inline_query")

CHAT_EXPIRY = 30 * 60.0  # seconds without a message after which a chat is forgotten (as in the REPL)
SWEEP_INTERVAL = 60.0  # how often expired chats are looked for
POLL_TIMEOUT = 30  # seconds a getUpdates long poll may wait
CONFLICT_LIMIT, CONFLICT_WINDOW = 3, 120.0  # this many 409s within the window: another poller
# Request timeouts, raised above PTB's 5 s: a timed-out send is never re-sent (it may have arrived).
READ_TIMEOUT, WRITE_TIMEOUT, CONNECT_TIMEOUT, POOL_TIMEOUT = 30.0, 30.0, 10.0, 10.0

#: The application, whatever its bot, context and data types.
AnyApplication: TypeAlias = Application[Any, Any, Any, Any, Any, Any]

# ---------------------------------------------------------------------------------------------
# The handlers


class TelegramFrontEnd(Commands, InlineMode):
    """The bot's handlers and the state they share; they ask the assistant and render.

    The handlers live by feature: :mod:`~bot.telegram.commands`, :mod:`~bot.telegram.messages`,
    :mod:`~bot.telegram.buttons` and :mod:`~bot.telegram.inline`; here they are registered, with
    the life cycle and the error handler.

    Args:
        assistant (Assistant): The assistant that answers every question.
        texts (Texts): The words of the front end.
        store (ChatStore | RedisChatStore): Per-chat state, in memory or shared in Redis.
        sweep_interval (float): Seconds between looks for expired chats.
    """

    def __init__(
        self,
        assistant: Assistant,
        texts: Texts,
        store: ChatStore | RedisChatStore,
        *,
        sweep_interval: float = SWEEP_INTERVAL,
    ) -> None:
        super().__init__(assistant, texts, store)
        self.sweep_interval = sweep_interval
        self._sweeper: asyncio.Task[None] | None = None
        self._conflicts: list[float] = []
        #: Set when repeated 409 Conflicts showed another process polling with the same token.
        self.conflicted = False

    def register(self, application: AnyApplication) -> None:
        """Add every handler and the error handler to ``application``."""
        for name in COMMANDS:
            application.add_handler(CommandHandler(name, getattr(self, f"on_{name}")))
        private, groups = filters.ChatType.PRIVATE, filters.ChatType.GROUPS
        content = ~filters.StatusUpdate.ALL
        application.add_handler(MessageHandler(private & filters.COMMAND, self.on_unknown_command))
        application.add_handler(MessageHandler(private & content, self.on_private_message))
        application.add_handler(MessageHandler(groups & content & ~filters.COMMAND, self.on_group_message))
        application.add_handler(CallbackQueryHandler(self.on_button))
        application.add_handler(InlineQueryHandler(self.on_inline_query))
        application.add_error_handler(self.on_error)

    # -- life cycle -------------------------------------------------------------------------

    async def post_init(self, application: AnyApplication) -> None:
        """Connect to Redis (if shared), register the command menu, look for expired chats."""
        if isinstance(self.store, RedisChatStore):
            await self.store.connect()
        commands = [BotCommand(name, self.texts.commands[name]) for name in COMMANDS]
        await application.bot.set_my_commands(commands)
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="cgt-bot:sweeper")

    async def post_stop(self, application: AnyApplication) -> None:
        """Stop the sweeper, forget expired chats, save state if persistence is on."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        await self.sweep()

    async def post_shutdown(self, application: AnyApplication) -> None:
        """Release the assistant's thread and the connections to Redis."""
        self._executor.shutdown(wait=True)
        if isinstance(self.store, RedisChatStore):
            await self.store.close()

    async def sweep(self) -> None:
        """Forget every chat idle for longer than the expiry; save state if persistence is on.

        State in Redis expires by itself.
        """
        if not isinstance(self.store, ChatStore):
            return
        for chat_id in self.store.expired(time.time()):
            await self._forget(chat_id)
        self.store.save()

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_interval)
            try:
                await self.sweep()
            except Exception as err:  # keep sweeping; a failed save is retried next time
                logger.error("Could not clean up expired chats (%s).", type(err).__name__)

    # -- errors -----------------------------------------------------------------------------

    async def on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Log an error without content, and apologise in the chat where one happened."""
        error = context.error
        if isinstance(error, Conflict):
            now = time.monotonic()
            self._conflicts = [at for at in self._conflicts if now - at < CONFLICT_WINDOW] + [now]
            if len(self._conflicts) >= CONFLICT_LIMIT and not self.conflicted:
                self.conflicted = True
                context.application.bot_data["conflicted"] = True
                context.application.stop_running()
            return
        if isinstance(error, NetworkError) and not isinstance(error, BadRequest):
            return  # counted and logged once per outage by the rate limiter; an apology cannot go out
        if isinstance(error, Forbidden):
            logger.info("A chat cannot be written to (the bot was blocked or removed); skipped.")
            return
        frames = "".join(traceback.format_tb(error.__traceback__)) if error else ""
        logger.error("Error while handling an update: %s\n%s", type(error).__name__, frames.rstrip())
        chat = update.effective_chat if isinstance(update, Update) else None
        if chat is not None:
            with contextlib.suppress(TelegramError):
                await context.bot.send_message(chat.id, self.texts.error)


# ---------------------------------------------------------------------------------------------
# Building and running


def api_root(api_url: str) -> str:
    """Check and normalise a Bot API server root such as ``http://127.0.0.1:8081``.

    Raises:
        UsageError: ``api_url`` is not an http(s) address.
    """
    parts = urlsplit(api_url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError("The Bot API URL must be a web address such as http://127.0.0.1:8081.")
    return api_url.strip().rstrip("/")


def build_application(
    assistant: Assistant,
    token: str,
    api_url: str | None = None,
    persistence_path: str | os.PathLike[str] | None = None,
    *,
    expiry: float = CHAT_EXPIRY,
    sweep_interval: float = SWEEP_INTERVAL,
    redis_url: str | None = None,
    webhook: bool = False,
    lock_ttl: float | None = None,
) -> AnyApplication:
    """Build the Telegram application around ``assistant``; it is not started.

    Args:
        assistant (Assistant): Answers every question.
        token (str): The bot token from BotFather.
        api_url (str | None): A Bot API server root (calls go to ``<root>/bot<TOKEN>/<method>``);
            None uses Telegram's own server.
        persistence_path (str | Path | None): A JSON file for per-chat state; None keeps it in
            memory only.
        expiry (float): Seconds without a message after which a chat's context is forgotten.
        sweep_interval (float): Seconds between looks for expired chats.
        redis_url (str | None): Keep per-chat state in this Redis server, shared with other
            workers (``redis://HOST:PORT/DB``); None keeps it in this process.
        webhook (bool): Build for webhook mode (no updater polling for updates).
        lock_ttl (float | None): Seconds a chat's Redis lock outlives a dead worker (default
            :data:`~bot.telegram.redis.LOCK_TTL`).

    RETURNS (Application): Ready for ``run_polling`` (or, with ``webhook``,
        :func:`~bot.telegram.webhook.serve_webhook`). Never log it: its repr holds the token.

    Raises:
        UsageError: ``redis_url`` together with ``persistence_path``, or a bad URL.
    """
    store: ChatStore | RedisChatStore
    shared: RedisChatStore | None = None
    if redis_url is not None:
        if persistence_path is not None:
            raise UsageError("Use either --redis or --persist, not both: Redis keeps the state already.")
        ttl = {} if lock_ttl is None else {"lock_ttl": lock_ttl}
        store = shared = RedisChatStore(redis_url, expiry, **ttl)
    else:
        store = ChatStore(expiry, persistence_path)
    front_end = TelegramFrontEnd(assistant, load_texts(), store, sweep_interval=sweep_interval)
    builder = (
        ApplicationBuilder()
        .token(token)
        .defaults(
            Defaults(parse_mode=ParseMode.HTML, link_preview_options=LinkPreviewOptions(is_disabled=True))
        )
        .rate_limiter(RetryingRateLimiter(shared=shared))
        .read_timeout(READ_TIMEOUT)
        .write_timeout(WRITE_TIMEOUT)
        .connect_timeout(CONNECT_TIMEOUT)
        .pool_timeout(POOL_TIMEOUT)
        .concurrent_updates(PerChatUpdateProcessor(shared=shared))
        .post_init(front_end.post_init)
        .post_stop(front_end.post_stop)
        .post_shutdown(front_end.post_shutdown)
    )
    if api_url is not None:
        root = api_root(api_url)
        builder = builder.base_url(f"{root}/bot").base_file_url(f"{root}/file/bot")
    if webhook:
        builder = builder.updater(None)
    application = builder.build()
    front_end.register(application)
    return application


def run(
    token: str | None = None,
    api_url: str | None = None,
    persistence_path: str | os.PathLike[str] | None = None,
    *,
    webhook_url: str | None = None,
    listen: str | None = None,
    redis_url: str | None = None,
) -> int:
    """Run the bot until SIGTERM or Ctrl-C: what ``cgt-bot telegram`` calls.

    Long polling by default; with ``webhook_url`` and ``listen``, a webhook worker.

    Args:
        token (str | None): The bot token; None reads ``TELEGRAM_BOT_TOKEN``.
        api_url (str | None): A Bot API server root; None reads ``TELEGRAM_API_URL``, and without it
            Telegram's own server is used.
        persistence_path (str | Path | None): Save per-chat state to this JSON file (off when None).
        webhook_url (str | None): The public address Telegram posts updates to; the secret comes
            from ``TELEGRAM_WEBHOOK_SECRET``.
        listen (str | None): ``HOST:PORT`` to serve updates on (webhook mode).
        redis_url (str | None): Shared state in Redis; None reads ``CGT_BOT_REDIS_URL``, and without
            it state stays in memory.

    RETURNS (int): The exit code: 0 after a stop signal, 2 without a token or with a bad URL, 1 when
        the token is rejected or the server cannot be reached. Errors are one line on standard
        error and never show the token.
    """
    try:
        with _sigterm_as_interrupt():
            return _run(token, api_url, persistence_path, webhook_url, listen, redis_url)
    except KeyboardInterrupt:
        return 0
    except CgtBotError as err:
        print(f"cgt-bot: {err}", file=sys.stderr)
        return err.exit_code


def _run(
    token: str | None,
    api_url: str | None,
    persistence_path: str | os.PathLike[str] | None,
    webhook_url: str | None,
    listen: str | None,
    redis_url: str | None,
) -> int:
    token = (token or os.environ.get("TELEGRAM_BOT_TOKEN") or "").strip()
    if not token:
        raise UsageError("No Telegram bot token: set TELEGRAM_BOT_TOKEN to the token BotFather gave you.")
    api_url = api_url or os.environ.get("TELEGRAM_API_URL") or None
    root = api_root(api_url) if api_url else None
    redis_url = redis_url or os.environ.get("CGT_BOT_REDIS_URL") or None
    if redis_url is not None:
        redis_url = check_redis_url(redis_url)
        if persistence_path is not None:
            raise UsageError("Use either --redis or --persist, not both: Redis keeps the state already.")
    if (webhook_url is None) != (listen is None):
        raise UsageError("Webhook mode needs both --webhook-url URL and --listen HOST:PORT.")
    webhook: tuple[str, str, int, str] | None = None
    if webhook_url is not None and listen is not None:
        host, port = parse_listen(listen)
        secret = check_secret(os.environ.get("TELEGRAM_WEBHOOK_SECRET"))
        webhook = (check_webhook_url(webhook_url), host, port, secret)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        username = loop.run_until_complete(_check_token(token, root))
        if redis_url is not None:
            loop.run_until_complete(_check_redis(redis_url))
    except BaseException:
        loop.close()
        asyncio.set_event_loop(None)
        raise

    from bot import Assistant  # loaded only once the token is known to work

    application = build_application(
        Assistant(), token, root, persistence_path, redis_url=redis_url, webhook=webhook is not None
    )
    where = "" if redis_url is None else f", state in Redis at {redis_where(redis_url)}"
    if webhook is not None:
        url, host, port, secret = webhook
        parts = urlsplit(url)

        def announce(bound: int) -> str:
            return (
                f"Answering on Telegram as @{username} by webhook ({parts.scheme}://{parts.hostname}"
                f"{parts.path}, listening on {host}:{bound}{where}). Press Ctrl-C to stop."
            )

        try:
            loop.run_until_complete(
                serve_webhook(
                    application,
                    url,
                    host,
                    port,
                    secret,
                    allowed_updates=list(ALLOWED_UPDATES),
                    announce=announce,
                )
            )
        except TelegramError as err:  # setWebhook refused, say, a URL that is not HTTPS
            raise CgtBotError(
                f"Telegram did not take the webhook ({type(err).__name__}: {scrub(str(err))})."
            ) from None
        except OSError as err:
            raise CgtBotError(
                f"Cannot listen on {host}:{port} ({err.strerror or type(err).__name__})."
            ) from None
        finally:
            loop.close()
            asyncio.set_event_loop(None)
        return 0
    print(f"Answering on Telegram as @{username}{where}. Press Ctrl-C to stop.", file=sys.stderr)
    application.run_polling(allowed_updates=list(ALLOWED_UPDATES), timeout=POLL_TIMEOUT)
    if application.bot_data.get("conflicted"):
        raise CgtBotError(
            "Stopped: another process is polling with this token (repeated 409 Conflict); "
            "stop the other one, or run workers in webhook mode."
        )
    return 0


async def _check_token(token: str, root: str | None) -> str:
    """Ask the server who the bot is; RETURNS its username. Errors never quote the token."""
    where = "Telegram" if root is None else _where(root)
    if root is None:
        client = Bot(token)
    else:
        client = Bot(token, base_url=f"{root}/bot", base_file_url=f"{root}/file/bot")
    try:
        async with client as bot:
            return bot.username
    except InvalidToken:
        raise CgtBotError(f"{where} rejected the bot token; check TELEGRAM_BOT_TOKEN.") from None
    except TelegramError as err:
        raise CgtBotError(
            f"Could not reach the Bot API server at {where} ({type(err).__name__}); "
            "check the network or the --api-url."
        ) from None


async def _check_redis(url: str) -> None:
    """Connect to Redis once before the assistant loads (a one-line error if it cannot)."""
    store = RedisChatStore(url, CHAT_EXPIRY)
    await store.connect()
    await store.close()


def _where(root: str) -> str:
    parts = urlsplit(root)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}"


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM like Ctrl-C until polling installs its own handlers (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
