"""The Telegram front end: `cgt-bot telegram`, long polling with python-telegram-bot.

Every question goes to the same :class:`bot.Assistant` as the REPL, with the chat id as the
session; the handlers here only render its :class:`~bot.reply.Reply` as Telegram messages and
buttons. The words people see live in ``bot/data/telegram.yaml``.

Privacy: nothing here logs message text, names or ids. Per-chat state (the short keys behind
buttons, the time of the last message) lives in memory and is dropped, together with the
assistant's context, after :data:`CHAT_EXPIRY` seconds without a message; it is written to disk only
when a persistence path is given.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import signal
import string
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, get_args
from urllib.parse import urlsplit

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator
from telegram import (
    Bot,
    BotCommand,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InlineQueryResultArticle,
    InlineQueryResultsButton,
    InputTextMessageContent,
    LinkPreviewOptions,
    Message,
    ReplyParameters,
    Update,
)
from telegram.constants import ChatAction, MessageEntityType, ParseMode
from telegram.error import BadRequest, Conflict, Forbidden, InvalidToken, NetworkError, TelegramError
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    BaseUpdateProcessor,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    Defaults,
    InlineQueryHandler,
    MessageHandler,
    filters,
)

from bot.errors import CgtBotError, DataError, UsageError
from bot.reply import Reply
from bot.telegram_format import brand_pattern, escape, render_html, shorten, split_text
from knowledge.schema import Kind

if TYPE_CHECKING:
    from bot import Assistant

__all__ = [
    "ALLOWED_UPDATES",
    "CHAT_EXPIRY",
    "ChatStore",
    "PerChatUpdateProcessor",
    "RetryingRateLimiter",
    "TelegramFrontEnd",
    "Texts",
    "api_root",
    "build_application",
    "load_texts",
    "run",
]

logger = logging.getLogger(__name__)

TEXTS_PATH = Path(__file__).parent / "data" / "telegram.yaml"
#: The update types the bot asks Telegram for.
ALLOWED_UPDATES = ("message", "edited_message", "callback_query", "inline_query")
COMMANDS = ("start", "help", "products", "about", "privacy", "reset", "forget")
KINDS: tuple[str, ...] = get_args(Kind)

CHAT_EXPIRY = 30 * 60.0  # seconds without a message after which a chat is forgotten (as in the REPL)
SWEEP_INTERVAL = 60.0  # how often expired chats are looked for
POLL_TIMEOUT = 30  # seconds a getUpdates long poll may wait
MAX_CONCURRENT_UPDATES = 256
TYPING_DELAY = 0.3  # show "typing…" only for answers that take longer than this
TYPING_REFRESH = 4.0  # Telegram shows the action for about 5 seconds
FLOOD_LIMIT = 20  # messages one chat may have answered within FLOOD_WINDOW seconds
FLOOD_WINDOW = 60.0
RATE_LIMIT_RETRIES = 3  # retries after a 429
NETWORK_RETRIES = 3  # retries after a network error when sending
MAX_BUTTON_KEYS = 64  # button keys kept per chat; older buttons get "please ask again"
MAX_SUGGESTIONS = 4
INLINE_RESULTS = 4
INLINE_ANSWER_LIMIT = 900
INLINE_CACHE_SECONDS = 300

_T = TypeVar("_T")

# ---------------------------------------------------------------------------------------------
# Texts


_ALLOWED_TAGS = ("b", "i", "u", "s", "code")
_TAG = re.compile(r"<(/?)([a-z]+)>")
_ENTITY = re.compile(r"&(?:amp|lt|gt|quot);")


def _check_text(value: str, allowed: frozenset[str], is_html: bool) -> str:
    try:
        used = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
    except ValueError as err:
        raise ValueError(f"braces do not pair up ({err}); write {{{{ and }}}} for a literal brace") from None
    unknown = sorted(used - allowed)
    if unknown:
        known = ", ".join(f"{{{name}}}" for name in sorted(allowed)) or "none"
        raise ValueError(f"unknown placeholder {{{unknown[0]}}}; this text may use: {known}")
    if is_html:
        _check_html(value)
    return value


def _check_html(value: str) -> None:
    open_tags: list[str] = []
    for match in _TAG.finditer(value):
        closing, tag = match.groups()
        if tag not in _ALLOWED_TAGS:
            raise ValueError(f"tag <{tag}> is not allowed; use {', '.join(f'<{t}>' for t in _ALLOWED_TAGS)}")
        if not closing:
            open_tags.append(tag)
        elif not open_tags or open_tags.pop() != tag:
            raise ValueError(f"</{tag}> does not close the tag before it")
    if open_tags:
        raise ValueError(f"<{open_tags[-1]}> is never closed")
    rest = _ENTITY.sub("", _TAG.sub("", value))
    for char in "<>&":
        if char in rest:
            raise ValueError(f"write {char!r} as {escape(char)!r}")


def _text(*placeholders: str, is_html: bool = True) -> Any:
    check = partial(_check_text, allowed=frozenset(placeholders), is_html=is_html)
    return Annotated[str, Field(min_length=1), AfterValidator(check)]


Html = _text()
Plain = _text(is_html=False)
UsernameHtml = _text("bot_username")
BrandPlain = _text("brand", is_html=False)
KindHtml = _text("kind")
AboutHtml = _text("count", "reviewed")
DateHtml = _text("date")
RangeHtml = _text("oldest", "newest")
MinutesHtml = _text("minutes")


class _TextsModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ProductTexts(_TextsModel):
    """Texts of the /products browser."""

    choose_kind: Html
    kinds: dict[str, Plain]
    choose_product: KindHtml
    back: Plain
    question: BrandPlain

    @field_validator("kinds")
    @classmethod
    def _known_kinds(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(KINDS))
        if unknown:
            raise ValueError(f"unknown kind {unknown[0]!r}; kinds are {', '.join(KINDS)}")
        return value


class InlineTexts(_TextsModel):
    """Texts of inline mode (``@bot question`` in any chat)."""

    open_bot: Plain
    product_question: BrandPlain
    footer: UsernameHtml


class Texts(_TextsModel):
    """Every text of the Telegram front end, as loaded from ``bot/data/telegram.yaml``."""

    commands: dict[str, Annotated[str, Field(min_length=3, max_length=256)]]
    start: Html
    start_examples: list[Annotated[Plain, Field(max_length=120)]] = Field(min_length=1, max_length=8)
    help: UsernameHtml
    products: ProductTexts
    about: AboutHtml
    reviewed_one: DateHtml
    reviewed_range: RangeHtml
    privacy: MinutesHtml
    privacy_saved: Html
    reset_done: Html
    forget_done: Html
    please_type: Html
    please_ask_again: Html
    unknown_command: Html
    mention_only: UsernameHtml
    slow_down: Html
    error: Html
    inline: InlineTexts

    @field_validator("commands")
    @classmethod
    def _every_command(cls, value: dict[str, str]) -> dict[str, str]:
        missing = [name for name in COMMANDS if name not in value]
        extra = sorted(set(value) - set(COMMANDS))
        if missing or extra:
            raise ValueError(f"commands must be exactly {', '.join(COMMANDS)}")
        return value


def load_texts(path: Path = TEXTS_PATH) -> Texts:
    """Load and check the Telegram texts.

    Args:
        path (Path): The YAML file.

    RETURNS (Texts): The validated texts.

    Raises:
        DataError: The file is missing, is not YAML, or breaks the schema; every problem is
            reported as ``file: loc.path: message``.
    """
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        return Texts.model_validate(data)
    except OSError as err:
        raise DataError([f"{path}: cannot read the file ({err.strerror})"]) from None
    except yaml.YAMLError as err:
        raise DataError([f"{path}: not valid YAML ({err})"]) from None
    except ValidationError as err:
        problems = [
            f"{path}: {'.'.join(str(part) for part in error['loc']) or '(top)'}: {error['msg']}"
            for error in err.errors()
        ]
        raise DataError(problems) from None


def _fill(template: str, **values: object) -> str:
    """Fill an HTML template's placeholders with escaped values."""
    return template.format(**{name: escape(value) for name, value in values.items()})


def _plain(template_html: str) -> str:
    """An HTML text as plain text (for callback answers, which take no markup)."""
    return (
        re.sub(r"<[^>]+>", "", template_html).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    )


def _human_date(value: str) -> str:
    """'2026-05-01' -> 'May 1, 2026' (also 'YYYY-MM' and 'YYYY')."""
    parts = [int(part) for part in value.split("-")]
    if len(parts) == 3:
        day = date(*parts)
        return f"{day:%B} {day.day}, {day.year}"
    if len(parts) == 2:
        return f"{date(parts[0], parts[1], 1):%B %Y}"
    return str(parts[0])


# ---------------------------------------------------------------------------------------------
# Per-chat state


@dataclass
class ChatState:
    """What the front end keeps about one chat."""

    seen: float
    buttons: dict[str, str] = field(default_factory=dict)
    next_key: int = 0
    recent: deque[float] = field(default_factory=deque)
    warned: bool = False

    def key_for(self, question: str) -> str:
        """The callback data of a button that asks ``question``: a short key, never the text."""
        for key, known in self.buttons.items():
            if known == question:
                return f"q:{key}"
        key = _base36(self.next_key)
        self.next_key += 1
        self.buttons[key] = question
        while len(self.buttons) > MAX_BUTTON_KEYS:
            del self.buttons[next(iter(self.buttons))]
        return f"q:{key}"

    def flooded(self, now: float) -> bool:
        """Count one more message; True when the chat sent too many within the window."""
        while self.recent and now - self.recent[0] > FLOOD_WINDOW:
            self.recent.popleft()
        if len(self.recent) >= FLOOD_LIMIT:
            return True
        self.recent.append(now)
        self.warned = False
        return False


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    text = ""
    while True:
        number, rest = divmod(number, 36)
        text = digits[rest] + text
        if not number:
            return text


class ChatStore:
    """Per-chat state in memory, with an expiry, and saved to a JSON file only when asked.

    Args:
        expiry (float): Seconds without a message after which a chat counts as expired.
        path (str | Path | None): A JSON file to load at start and save to; None keeps
            everything in memory only.
    """

    def __init__(self, expiry: float, path: str | os.PathLike[str] | None = None) -> None:
        self.expiry = expiry
        self.path = Path(path) if path is not None else None
        self.chats: dict[int, ChatState] = {}
        self._dirty = False
        if self.path is not None:
            self._load()

    def touch(self, chat_id: int, now: float) -> ChatState:
        """The state of ``chat_id`` (new if there is none), marked as seen at ``now``."""
        state = self.chats.get(chat_id)
        if state is None:
            state = self.chats[chat_id] = ChatState(seen=now)
        state.seen = now
        self._dirty = True
        return state

    def is_expired(self, chat_id: int, now: float) -> bool:
        """Whether ``chat_id`` has state that has expired by ``now``."""
        state = self.chats.get(chat_id)
        return state is not None and now - state.seen > self.expiry

    def expired(self, now: float) -> list[int]:
        """The chats whose state has expired by ``now``."""
        return [chat_id for chat_id, state in self.chats.items() if now - state.seen > self.expiry]

    def drop(self, chat_id: int) -> None:
        """Remove everything held about ``chat_id``."""
        if self.chats.pop(chat_id, None) is not None:
            self._dirty = True

    def save(self) -> None:
        """Write the state to the file, if there is one and anything changed (owner-only file)."""
        if self.path is None or not self._dirty:
            return
        data = {
            "version": 1,
            "chats": {
                str(chat_id): {"seen": state.seen, "buttons": state.buttons, "next_key": state.next_key}
                for chat_id, state in self.chats.items()
            },
        }
        temporary = self.path.with_name(self.path.name + ".tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(data, handle)
        os.replace(temporary, self.path)
        self._dirty = False

    def _load(self) -> None:
        assert self.path is not None
        if not self.path.exists():
            return
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            now = time.time()
            for key, saved in data["chats"].items():
                state = ChatState(
                    seen=float(saved["seen"]),
                    buttons={str(k): str(v) for k, v in saved["buttons"].items()},
                    next_key=int(saved["next_key"]),
                )
                if now - state.seen <= self.expiry:
                    self.chats[int(key)] = state
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
            raise CgtBotError(
                f"Cannot read the saved chat state in {self.path} ({type(err).__name__}); "
                "move the file away to start afresh."
            ) from None


# ---------------------------------------------------------------------------------------------
# Processing and sending


class PerChatUpdateProcessor(BaseUpdateProcessor):
    """Runs updates of different chats in parallel and the updates of one chat in order."""

    def __init__(self, max_concurrent_updates: int = MAX_CONCURRENT_UPDATES) -> None:
        super().__init__(max_concurrent_updates)
        self._locks: dict[int, asyncio.Lock] = {}
        self._users: dict[int, int] = {}

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        """Await ``coroutine`` once every earlier update of the same chat is done."""
        chat = update.effective_chat if isinstance(update, Update) else None
        if chat is None:
            await coroutine
            return
        lock = self._locks.setdefault(chat.id, asyncio.Lock())
        self._users[chat.id] = self._users.get(chat.id, 0) + 1
        try:
            async with lock:
                await coroutine
        finally:
            self._users[chat.id] -= 1
            if not self._users[chat.id]:
                del self._users[chat.id], self._locks[chat.id]

    async def initialize(self) -> None:
        """Nothing to set up."""

    async def shutdown(self) -> None:
        """Nothing to release."""


class RetryingRateLimiter(AIORateLimiter):
    """Telegram's limits for outgoing requests, retrying 429s and network errors.

    :class:`~telegram.ext.AIORateLimiter` keeps the bot below about 30 messages a second overall
    and 20 a minute in each group and waits out a 429's ``retry_after``; this adds a few retries,
    with a short back-off, for requests that failed on the network. Log lines name the method and
    the error class only.
    """

    def __init__(self, *, network_retries: int = NETWORK_RETRIES, backoff: float = 0.5, **kwargs: Any):
        super().__init__(**kwargs)
        self._network_retries = network_retries
        self._backoff = backoff

    async def process_request(
        self,
        callback: Callable[..., Any],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> Any:
        """Send through the rate limiter; retry network errors other than Bad Request."""
        attempt = 0
        while True:
            try:
                return await super().process_request(callback, args, kwargs, endpoint, data, rate_limit_args)
            except NetworkError as err:
                attempt += 1
                if isinstance(err, BadRequest) or attempt > self._network_retries:
                    raise
                logger.warning(
                    "Network error on %s (%s); retry %d of %d.",
                    endpoint,
                    type(err).__name__,
                    attempt,
                    self._network_retries,
                )
                await asyncio.sleep(self._backoff * attempt)


# ---------------------------------------------------------------------------------------------
# The handlers


class TelegramFrontEnd:
    """The bot's handlers and the state they share; they ask the assistant and render.

    Args:
        assistant (Assistant): The assistant that answers every question.
        texts (Texts): The words of the front end.
        store (ChatStore): Per-chat state.
        sweep_interval (float): Seconds between looks for expired chats.
    """

    def __init__(
        self, assistant: Assistant, texts: Texts, store: ChatStore, *, sweep_interval: float = SWEEP_INTERVAL
    ) -> None:
        self.assistant = assistant
        self.texts = texts
        self.store = store
        self.sweep_interval = sweep_interval
        self.products = assistant.knowledge.products
        self._brands = brand_pattern(product.brand for product in self.products.values())
        self._kinds = [kind for kind in texts.products.kinds if self._listed(kind)]
        # The assistant is called from one thread, one call at a time, off the event loop.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cgt-assistant")
        self._sweeper: asyncio.Task[None] | None = None

    def register(self, application: Application) -> None:
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

    async def post_init(self, application: Application) -> None:
        """Register the command menu and start looking for expired chats."""
        commands = [BotCommand(name, self.texts.commands[name]) for name in COMMANDS]
        await application.bot.set_my_commands(commands)
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="cgt-bot:sweeper")

    async def post_stop(self, application: Application) -> None:
        """Stop the sweeper, forget expired chats, save state if persistence is on."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        await self.sweep()

    async def post_shutdown(self, application: Application) -> None:
        """Release the assistant's thread."""
        self._executor.shutdown(wait=True)

    async def sweep(self) -> None:
        """Forget every chat idle for longer than the expiry; save state if persistence is on."""
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

    # -- commands ---------------------------------------------------------------------------

    async def on_start(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Say what the bot is and is not; with a product as payload, open on that product."""
        message = update.effective_message
        payload = (context.args or [""])[0].lower().replace("_", "-")
        product = self.products.get(payload) if payload else None
        if product is None:
            keyboard = [
                [InlineKeyboardButton(example, callback_data=f"s:{index}")]
                for index, example in enumerate(self.texts.start_examples)
            ]
            await message.reply_text(self.texts.start, reply_markup=InlineKeyboardMarkup(keyboard))
            return
        await message.reply_text(self.texts.start)
        question = self.texts.products.question.format(brand=product.brand)
        await self._answer(context.bot, message.chat_id, question, thread_id=_thread(message))

    async def on_help(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Explain how to ask and what the commands do."""
        await update.effective_message.reply_text(_fill(self.texts.help, bot_username=context.bot.username))

    async def on_products(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Offer the kinds of therapy as buttons."""
        await update.effective_message.reply_text(
            self.texts.products.choose_kind, reply_markup=self._kinds_keyboard()
        )

    async def on_about(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Say where the facts come from and when they were last reviewed."""
        dates = sorted(product.last_reviewed for product in self.products.values())
        if dates[0] == dates[-1]:
            reviewed = _fill(self.texts.reviewed_one, date=_human_date(dates[0]))
        else:
            reviewed = _fill(
                self.texts.reviewed_range, oldest=_human_date(dates[0]), newest=_human_date(dates[-1])
            )
        count = sum(1 for product in self.products.values() if product.family is None)
        text = self.texts.about.format(count=escape(count), reviewed=reviewed)
        await update.effective_message.reply_text(text)

    async def on_privacy(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Say what is kept about the chat and for how long."""
        text = _fill(self.texts.privacy, minutes=round(self.store.expiry / 60))
        if self.store.path is not None:
            text += "\n\n" + self.texts.privacy_saved
        await update.effective_message.reply_text(text)

    async def on_reset(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Clear the conversation context of the chat."""
        await self._call(self.assistant.reset, str(update.effective_chat.id))
        await update.effective_message.reply_text(self.texts.reset_done)

    async def on_forget(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Remove everything held about the chat, on disk too."""
        await self._forget(update.effective_chat.id)
        self.store.save()
        await update.effective_message.reply_text(self.texts.forget_done)

    async def on_unknown_command(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Answer a command the bot does not have (private chats only)."""
        await update.effective_message.reply_text(self.texts.unknown_command)

    # -- messages ---------------------------------------------------------------------------

    async def on_private_message(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Answer every message of a private chat; ask for typed words where there are none."""
        message = update.effective_message
        if _sent_via(message, context.bot):
            return
        _, question = self._addressed(message, context.bot)
        quote = message.message_id if update.edited_message else None
        await self._respond(context.bot, message, question, quote=quote)

    async def on_group_message(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Answer a group message only when it mentions the bot or replies to it."""
        message = update.effective_message
        addressed, question = self._addressed(message, context.bot)
        if not addressed or _sent_via(message, context.bot):
            return
        await self._respond(context.bot, message, question, quote=message.message_id)

    async def _respond(self, bot: Bot, message: Message, question: str, *, quote: int | None) -> None:
        if question:
            await self._answer(bot, message.chat_id, question, thread_id=_thread(message), quote=quote)
        elif message.text or message.caption:
            await self._send(bot, message, _fill(self.texts.mention_only, bot_username=bot.username), quote)
        else:
            await self._send(bot, message, self.texts.please_type, quote)

    async def _send(self, bot: Bot, message: Message, text: str, quote: int | None) -> None:
        await bot.send_message(
            message.chat_id, text, message_thread_id=_thread(message), reply_parameters=_reply_to(quote)
        )

    # -- buttons ----------------------------------------------------------------------------

    async def on_button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Answer a button press; old or unknown buttons get "please ask again"."""
        query = update.callback_query
        message = query.message
        prefix, _, argument = (query.data or "").partition(":")
        if message is None:
            await query.answer(_plain(self.texts.please_ask_again))
            return
        if prefix in ("k", "m"):
            await query.answer()
            await self._browse(query.message, argument if prefix == "k" else None)
            return
        question = await self._button_question(message.chat.id, prefix, argument)
        await query.answer()
        thread_id = message.message_thread_id if isinstance(message, Message) else None
        if question is None:
            await context.bot.send_message(
                message.chat.id, self.texts.please_ask_again, message_thread_id=thread_id
            )
            return
        await self._answer(context.bot, message.chat.id, question, thread_id=thread_id)

    async def _button_question(self, chat_id: int, prefix: str, argument: str) -> str | None:
        if prefix == "q":
            await self._expire_if_idle(chat_id)
            state = self.store.chats.get(chat_id)
            return state.buttons.get(argument) if state else None
        if prefix == "s" and argument.isdigit() and int(argument) < len(self.texts.start_examples):
            return self.texts.start_examples[int(argument)]
        if prefix == "p" and argument in self.products:
            return self.texts.products.question.format(brand=self.products[argument].brand)
        return None

    async def _browse(self, message: Message, kind_index: str | None) -> None:
        """Show the kinds (``kind_index`` None) or the products of one kind, editing ``message``."""
        if kind_index is not None and kind_index.isdigit() and int(kind_index) < len(self._kinds):
            kind = self._kinds[int(kind_index)]
            listed = sorted(
                (p for p in self.products.values() if p.kind == kind and p.family is None),
                key=lambda product: product.brand.lower(),
            )
            buttons = [InlineKeyboardButton(p.brand, callback_data=f"p:{p.id}") for p in listed]
            rows = [buttons[i : i + 2] for i in range(0, len(buttons), 2)]
            rows.append([InlineKeyboardButton(self.texts.products.back, callback_data="m")])
            text = _fill(self.texts.products.choose_product, kind=self.texts.products.kinds[kind])
            markup = InlineKeyboardMarkup(rows)
        else:
            text, markup = self.texts.products.choose_kind, self._kinds_keyboard()
        if not isinstance(message, Message):  # too old to edit
            await message.get_bot().send_message(message.chat.id, text, reply_markup=markup)
            return
        try:
            await message.edit_text(text, reply_markup=markup)
        except BadRequest as err:
            if "not modified" not in str(err).lower():
                raise

    def _kinds_keyboard(self) -> InlineKeyboardMarkup:
        return InlineKeyboardMarkup(
            [
                [InlineKeyboardButton(self.texts.products.kinds[kind], callback_data=f"k:{index}")]
                for index, kind in enumerate(self._kinds)
            ]
        )

    def _listed(self, kind: str) -> bool:
        return any(p.kind == kind and p.family is None for p in self.products.values())

    # -- inline mode ------------------------------------------------------------------------

    async def on_inline_query(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Offer short, shareable answers with the disclaimer; never personalised."""
        query = update.inline_query
        text = " ".join(query.query.split())
        if not text:
            button = InlineQueryResultsButton(text=self.texts.inline.open_bot, start_parameter="inline")
            await query.answer([], button=button, cache_time=INLINE_CACHE_SECONDS, is_personal=False)
            return
        footer = _fill(self.texts.inline.footer, bot_username=context.bot.username)
        results = []
        for index, (question, reply) in enumerate(await self._inline_answers(text)):
            body = render_html(shorten(reply.text, INLINE_ANSWER_LIMIT), self._brands)
            first_line = reply.text.strip().split("\n", 1)[0]
            results.append(
                InlineQueryResultArticle(
                    id=str(index),
                    title=question[:100],
                    description=first_line[:120],
                    input_message_content=InputTextMessageContent(
                        f"{body}\n\n{footer}", parse_mode=ParseMode.HTML
                    ),
                )
            )
        await query.answer(results, cache_time=INLINE_CACHE_SECONDS, is_personal=False)

    async def _inline_answers(self, text: str) -> list[tuple[str, Reply]]:
        """The query's own answer, then one for each product it names; no session, so no context."""
        reply = await self._call(self.assistant.reply, text, None)
        answers = [] if reply.did_you_mean and not reply.products else [(text, reply)]
        for product_id in dict.fromkeys([*reply.products, *reply.did_you_mean]):
            if len(answers) >= INLINE_RESULTS:
                break
            if product_id not in self.products:
                continue
            question = self.texts.inline.product_question.format(brand=self.products[product_id].brand)
            if question.casefold() != text.casefold():
                answers.append((question, await self._call(self.assistant.reply, question, None)))
        seen: set[str] = set()
        unique = []
        for question, answer in answers:
            if answer.text not in seen:
                seen.add(answer.text)
                unique.append((question, answer))
        return unique

    # -- answering --------------------------------------------------------------------------

    async def _answer(
        self, bot: Bot, chat_id: int, question: str, *, thread_id: int | None = None, quote: int | None = None
    ) -> None:
        """Ask the assistant in the chat's session and send the reply."""
        await self._expire_if_idle(chat_id)
        state = self.store.touch(chat_id, time.time())
        if state.flooded(time.time()):
            if not state.warned:
                state.warned = True
                await bot.send_message(chat_id, self.texts.slow_down, message_thread_id=thread_id)
            return
        reply = await self._ask_showing_typing(bot, chat_id, thread_id, question)
        logger.debug("Answered a message: intent %s.", reply.intent)
        await self._send_reply(bot, chat_id, reply, state, thread_id=thread_id, quote=quote)

    async def _ask_showing_typing(
        self, bot: Bot, chat_id: int, thread_id: int | None, question: str
    ) -> Reply:
        answer = asyncio.ensure_future(self._call(self.assistant.reply, question, str(chat_id)))
        done, _ = await asyncio.wait({answer}, timeout=TYPING_DELAY)
        while not done:
            with contextlib.suppress(TelegramError):
                await bot.send_chat_action(chat_id, ChatAction.TYPING, message_thread_id=thread_id)
            done, _ = await asyncio.wait({answer}, timeout=TYPING_REFRESH)
        return answer.result()

    async def _send_reply(
        self,
        bot: Bot,
        chat_id: int,
        reply: Reply,
        state: ChatState,
        *,
        thread_id: int | None,
        quote: int | None,
    ) -> None:
        """Send ``reply`` in order, split below Telegram's limit; buttons under the last part.

        An urgent reply goes alone and without buttons.
        """
        markup = None if reply.urgent else self._reply_keyboard(reply, state)
        chunks = split_text(reply.text)
        for index, chunk in enumerate(chunks):
            await bot.send_message(
                chat_id,
                render_html(chunk, self._brands),
                reply_markup=markup if index == len(chunks) - 1 else None,
                message_thread_id=thread_id,
                reply_parameters=_reply_to(quote) if index == 0 else None,
            )

    def _reply_keyboard(self, reply: Reply, state: ChatState) -> InlineKeyboardMarkup | None:
        """Did-you-mean choices (two a row), then suggestions (one a row); None when there are none.

        A choice asks the suggestion that names its product (the question again with that name),
        else the product question of the texts.
        """
        suggestions = list(reply.suggestions)
        choices = []
        for product_id in reply.did_you_mean:
            product = self.products.get(product_id)
            if product is None:
                continue
            question = next((s for s in suggestions if product.brand.casefold() in s.casefold()), None)
            if question is None:
                question = self.texts.products.question.format(brand=product.brand)
            else:
                suggestions.remove(question)
            choices.append(InlineKeyboardButton(product.brand, callback_data=state.key_for(question)))
        rows = [choices[i : i + 2] for i in range(0, len(choices), 2)]
        rows += [
            [InlineKeyboardButton(suggestion, callback_data=state.key_for(suggestion))]
            for suggestion in suggestions[:MAX_SUGGESTIONS]
        ]
        return InlineKeyboardMarkup(rows) if rows else None

    # -- state ------------------------------------------------------------------------------

    async def _call(self, function: Callable[..., _T], *args: Any) -> _T:
        """Run an assistant method on the assistant's own thread."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    async def _expire_if_idle(self, chat_id: int) -> None:
        if self.store.is_expired(chat_id, time.time()):
            await self._forget(chat_id)

    async def _forget(self, chat_id: int) -> None:
        await self._call(self.assistant.forget, str(chat_id))
        self.store.drop(chat_id)

    def _addressed(self, message: Message, bot: Bot) -> tuple[bool, str]:
        """Whether ``message`` mentions the bot or replies to it, and its text without the mention."""
        text = message.text or message.caption or ""
        mention = re.compile(rf"@{re.escape(bot.username)}\b", re.IGNORECASE)
        entities = message.entities or message.caption_entities or ()
        mentioned = bool(mention.search(text)) or any(
            entity.type == MessageEntityType.TEXT_MENTION and entity.user and entity.user.id == bot.id
            for entity in entities
        )
        replied = message.reply_to_message is not None and (
            message.reply_to_message.from_user is not None and message.reply_to_message.from_user.id == bot.id
        )
        return mentioned or replied, " ".join(mention.sub(" ", text).split())

    # -- errors -----------------------------------------------------------------------------

    async def on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Log an error without content, and apologise in the chat where one happened."""
        error = context.error
        if isinstance(error, Conflict):
            logger.warning(
                "Telegram reports another program polling with this bot token (409 Conflict); "
                "retrying with back-off."
            )
            return
        if update is None and isinstance(error, NetworkError):
            logger.warning("Network error while polling Telegram (%s); retrying.", type(error).__name__)
            return
        if isinstance(error, Forbidden):
            logger.info("A chat cannot be written to (the bot was blocked or removed); skipped.")
            return
        frames = "".join(traceback.format_tb(error.__traceback__)) if error else ""
        logger.error("Error while handling an update: %s\n%s", type(error).__name__, frames.rstrip())
        chat = update.effective_chat if isinstance(update, Update) else None
        if chat is not None:
            with contextlib.suppress(TelegramError):
                await context.bot.send_message(chat.id, self.texts.error)


def _thread(message: Message) -> int | None:
    return message.message_thread_id if message.is_topic_message else None


def _reply_to(message_id: int | None) -> ReplyParameters | None:
    return None if message_id is None else ReplyParameters(message_id, allow_sending_without_reply=True)


def _sent_via(message: Message, bot: Bot) -> bool:
    """Whether ``message`` was sent through this bot's inline mode (an answer, not a question)."""
    return message.via_bot is not None and message.via_bot.id == bot.id


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
) -> Application:
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

    RETURNS (Application): Ready for ``run_polling``. Never log it: its repr holds the token.
    """
    front_end = TelegramFrontEnd(
        assistant, load_texts(), ChatStore(expiry, persistence_path), sweep_interval=sweep_interval
    )
    builder = (
        ApplicationBuilder()
        .token(token)
        .defaults(
            Defaults(parse_mode=ParseMode.HTML, link_preview_options=LinkPreviewOptions(is_disabled=True))
        )
        .rate_limiter(RetryingRateLimiter(max_retries=RATE_LIMIT_RETRIES))
        .concurrent_updates(PerChatUpdateProcessor())
        .post_init(front_end.post_init)
        .post_stop(front_end.post_stop)
        .post_shutdown(front_end.post_shutdown)
    )
    if api_url is not None:
        root = api_root(api_url)
        builder = builder.base_url(f"{root}/bot").base_file_url(f"{root}/file/bot")
    application = builder.build()
    front_end.register(application)
    return application


def run(
    token: str | None = None,
    api_url: str | None = None,
    persistence_path: str | os.PathLike[str] | None = None,
) -> int:
    """Run the bot with long polling until SIGTERM or Ctrl-C: what ``cgt-bot telegram`` calls.

    Args:
        token (str | None): The bot token; None reads ``TELEGRAM_BOT_TOKEN``.
        api_url (str | None): A Bot API server root; None reads ``TELEGRAM_API_URL``, and without it
            Telegram's own server is used.
        persistence_path (str | Path | None): Save per-chat state to this JSON file (off when None).

    RETURNS (int): The exit code: 0 after a stop signal, 2 without a token or with a bad URL, 1 when
        the token is rejected or the server cannot be reached. Errors are one line on standard
        error and never show the token.
    """
    try:
        with _sigterm_as_interrupt():
            return _run(token, api_url, persistence_path)
    except KeyboardInterrupt:
        return 0
    except CgtBotError as err:
        print(f"cgt-bot: {err}", file=sys.stderr)
        return err.exit_code


def _run(token: str | None, api_url: str | None, persistence_path: str | os.PathLike[str] | None) -> int:
    token = (token or os.environ.get("TELEGRAM_BOT_TOKEN") or "").strip()
    if not token:
        raise UsageError("No Telegram bot token: set TELEGRAM_BOT_TOKEN to the token BotFather gave you.")
    api_url = api_url or os.environ.get("TELEGRAM_API_URL") or None
    root = api_root(api_url) if api_url else None
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        username = loop.run_until_complete(_check_token(token, root))
    except BaseException:
        loop.close()
        asyncio.set_event_loop(None)
        raise

    from bot import Assistant  # loaded only once the token is known to work

    application = build_application(Assistant(), token, root, persistence_path)
    print(f"Answering on Telegram as @{username}. Press Ctrl-C to stop.", file=sys.stderr)
    application.run_polling(allowed_updates=list(ALLOWED_UPDATES), timeout=POLL_TIMEOUT)
    return 0


async def _check_token(token: str, root: str | None) -> str:
    """Ask the server who the bot is; RETURNS its username. Errors never quote the token."""
    where = "Telegram" if root is None else _where(root)
    kwargs = {} if root is None else {"base_url": f"{root}/bot", "base_file_url": f"{root}/file/bot"}
    try:
        async with Bot(token, **kwargs) as bot:
            return bot.username
    except InvalidToken:
        raise CgtBotError(f"{where} rejected the bot token; check TELEGRAM_BOT_TOKEN.") from None
    except TelegramError as err:
        raise CgtBotError(
            f"Could not reach the Bot API server at {where} ({type(err).__name__}); "
            "check the network or the --api-url."
        ) from None


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
