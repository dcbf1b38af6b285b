"""Building and running the Telegram front end: :func:`build_application` and :func:`run`."""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import os
import re
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar
from urllib.parse import urlsplit

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
from telegram.constants import ChatAction, ChatType, MessageEntityType, ParseMode
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
from bot.reply import Reply, SourceRef
from bot.session import Context
from bot.telegram.format import (
    MESSAGE_LIMIT,
    brand_pattern,
    escape,
    render_html,
    shorten,
    split_text,
    utf16_len,
)
from bot.telegram.redis import RedisChatStore, check_redis_url, redis_where
from bot.telegram.state import ChatState, ChatStore, PerChatUpdateProcessor, RetryingRateLimiter
from bot.telegram.texts import (
    COMMANDS,
    Texts,
    fill_html,
    human_date,
    load_texts,
    plain_text,
)
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
TYPING_DELAY = 0.3  # show "typing…" only for answers that take longer than this
TYPING_REFRESH = 4.0  # Telegram shows the action for about 5 seconds
CONFLICT_LIMIT, CONFLICT_WINDOW = 3, 120.0  # this many 409s within the window: another poller
# Request timeouts, raised above PTB's 5 s: a timed-out send is never re-sent (it may have arrived).
READ_TIMEOUT, WRITE_TIMEOUT, CONNECT_TIMEOUT, POOL_TIMEOUT = 30.0, 30.0, 10.0, 10.0
MAX_SUGGESTIONS = 4
INLINE_RESULTS = 4
INLINE_ANSWER_LIMIT = 900
INLINE_CACHE_SECONDS = 300

_T = TypeVar("_T")
#: The application, whatever its bot, context and data types.
AnyApplication: TypeAlias = Application[Any, Any, Any, Any, Any, Any]

# ---------------------------------------------------------------------------------------------
# The handlers


class TelegramFrontEnd:
    """The bot's handlers and the state they share; they ask the assistant and render.

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

    # -- commands ---------------------------------------------------------------------------

    async def on_start(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Say what the bot is and is not; with a product as payload, open on that product."""
        message = _message(update)
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
        await _message(update).reply_text(fill_html(self.texts.help, bot_username=context.bot.username))

    async def on_products(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Offer the kinds of therapy as buttons."""
        await _message(update).reply_text(
            self.texts.products.choose_kind, reply_markup=self._kinds_keyboard()
        )

    async def on_whatsnew(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Say what changed in the last year: the assistant's answer to the what's-new question.

        Asked in the chat's conversation like a typed question, so "the second one" can follow.
        """
        message = _message(update)
        quote = None if message.chat.type == ChatType.PRIVATE else message.message_id
        await self._answer(
            context.bot,
            message.chat_id,
            self.texts.whats_new_question,
            thread_id=_thread(message),
            quote=quote,
        )

    async def on_about(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Say where the facts come from and when they were last reviewed."""
        dates = sorted(product.last_reviewed for product in self.products.values())
        if dates[0] == dates[-1]:
            reviewed = fill_html(self.texts.reviewed_one, date=human_date(dates[0]))
        else:
            reviewed = fill_html(
                self.texts.reviewed_range, oldest=human_date(dates[0]), newest=human_date(dates[-1])
            )
        count = sum(1 for product in self.products.values() if product.family is None)
        text = self.texts.about.format(count=escape(count), reviewed=reviewed)
        await _message(update).reply_text(text)

    async def on_privacy(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Say what is kept about the chat and for how long."""
        text = fill_html(self.texts.privacy, minutes=round(self.store.expiry / 60))
        if self.store.path is not None:
            text += "\n\n" + self.texts.privacy_saved
        elif self.store.shared:
            text += "\n\n" + self.texts.privacy_shared
        await _message(update).reply_text(text)

    async def on_reset(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Clear the conversation context of the chat."""
        chat_id = _chat_id(update)
        await self._call(self.assistant.reset, str(chat_id))
        if isinstance(self.store, RedisChatStore):
            await self.store.drop_context(chat_id)
        await _message(update).reply_text(self.texts.reset_done)

    async def on_forget(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Remove everything held about the chat, on disk too."""
        await self._forget(_chat_id(update))
        if isinstance(self.store, ChatStore):
            self.store.save()
        await _message(update).reply_text(self.texts.forget_done)

    async def on_unknown_command(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Answer a command the bot does not have (private chats only)."""
        await _message(update).reply_text(self.texts.unknown_command)

    # -- messages ---------------------------------------------------------------------------

    async def on_private_message(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Answer every message of a private chat; ask for typed words where there are none."""
        message = _message(update)
        if _sent_via(message, context.bot):
            return
        _, question = self._addressed(message, context.bot)
        quote = message.message_id if update.edited_message else None
        await self._respond(context.bot, message, question, quote=quote)

    async def on_group_message(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Answer a group message only when it mentions the bot or replies to it."""
        message = _message(update)
        addressed, question = self._addressed(message, context.bot)
        if not addressed or _sent_via(message, context.bot):
            return
        await self._respond(context.bot, message, question, quote=message.message_id)

    async def _respond(self, bot: Bot, message: Message, question: str, *, quote: int | None) -> None:
        if question:
            await self._answer(bot, message.chat_id, question, thread_id=_thread(message), quote=quote)
        elif message.text or message.caption:
            await self._send(
                bot, message, fill_html(self.texts.mention_only, bot_username=bot.username), quote
            )
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
        if query is None:
            return
        message = query.message
        prefix, _, argument = (query.data or "").partition(":")
        if message is None:
            await query.answer(plain_text(self.texts.please_ask_again))
            return
        if prefix in ("k", "m"):
            await query.answer()
            if isinstance(message, Message):
                await self._browse(message, argument if prefix == "k" else None)
            return
        if prefix == "r":
            await query.answer()
            await self._show_sources(context.bot, message, argument)
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
            state = await self._existing_state(chat_id)
            return state.buttons.get(argument) if state else None
        if prefix == "s" and argument.isdigit() and int(argument) < len(self.texts.start_examples):
            return self.texts.start_examples[int(argument)]
        if prefix == "p" and argument in self.products:
            return self.texts.products.question.format(brand=self.products[argument].brand)
        return None

    async def _show_sources(self, bot: Bot, message: Message | Any, key: str) -> None:
        """Send the sources behind ``key`` as a reply to the answer they belong to."""
        thread_id = message.message_thread_id if isinstance(message, Message) else None
        state = await self._existing_state(message.chat.id)
        entry = state.sources.get(key) if state else None
        if entry is None:
            await bot.send_message(message.chat.id, self.texts.please_ask_again, message_thread_id=thread_id)
            return
        quote = message.message_id if isinstance(message, Message) else None
        for index, chunk in enumerate(self._sources_html(entry["sources"], entry["reviewed"])):
            await bot.send_message(
                message.chat.id,
                chunk,
                message_thread_id=thread_id,
                reply_parameters=_reply_to(quote) if index == 0 else None,
            )

    def _sources_html(self, sources: list[dict[str, Any]], reviewed: str | None) -> list[str]:
        """The sources as Telegram HTML, each title linked to its page; split below the limit."""
        texts = self.texts.sources
        lines = [texts.heading]
        for raw in sources:
            source = SourceRef.model_validate(raw)
            date = escape(_human_date(source.date))
            site = _site(source.url)
            if site is None:
                lines.append(texts.item_no_link.format(title=escape(source.title), date=date))
                continue
            assert source.url is not None  # a site comes only from a web address
            link = f'<a href="{html.escape(source.url, quote=True)}">{escape(source.title)}</a>'
            lines.append(texts.item.format(title=link, site=escape(site), date=date))
        if reviewed:
            lines.append("\n" + fill_html(texts.reviewed, date=_human_date(reviewed)))
        chunks: list[str] = []
        size = 0
        for line in lines:
            # Telegram counts the text people see: a link's address is not part of it.
            seen = utf16_len(plain_text(line)) + 1
            if chunks and size + seen > MESSAGE_LIMIT:
                chunks.append(line.lstrip("\n"))
                size = seen
            elif chunks:
                chunks[-1] += "\n" + line
                size += seen
            else:
                chunks.append(line)
                size = seen
        return chunks

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
            text = fill_html(self.texts.products.choose_product, kind=self.texts.products.kinds[kind])
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
        if query is None:
            return
        text = " ".join(query.query.split())
        if not text:
            button = InlineQueryResultsButton(text=self.texts.inline.open_bot, start_parameter="inline")
            await query.answer([], button=button, cache_time=INLINE_CACHE_SECONDS, is_personal=False)
            return
        footer = fill_html(self.texts.inline.footer, bot_username=context.bot.username)
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
        state = await self._touched_state(chat_id)
        if state.flooded(time.time()):
            warn, state.warned = not state.warned, True
            await self._save_state(chat_id, state)
            if warn:
                await bot.send_message(chat_id, self.texts.slow_down, message_thread_id=thread_id)
            return
        reply = await self._ask_showing_typing(bot, chat_id, thread_id, question)
        logger.debug("Answered a message: intent %s.", reply.intent)
        await self._send_reply(bot, chat_id, reply, state, thread_id=thread_id, quote=quote)

    async def _ask_showing_typing(
        self, bot: Bot, chat_id: int, thread_id: int | None, question: str
    ) -> Reply:
        answer = asyncio.ensure_future(self._reply_in_chat(chat_id, question))
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
        await self._save_state(chat_id, state)  # before sending: a press may come at once
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
        """Did-you-mean choices (two a row), suggestions (one a row), then "Sources"; None if none.

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
        if reply.sources:
            sources = [source.model_dump() for source in reply.sources]
            key = state.key_for_sources(sources, reply.reviewed)
            rows.append([InlineKeyboardButton(self.texts.sources.button, callback_data=key)])
        return InlineKeyboardMarkup(rows) if rows else None

    # -- state ------------------------------------------------------------------------------

    async def _call(self, function: Callable[..., _T], *args: Any) -> _T:
        """Run an assistant method on the assistant's own thread."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    async def _reply_in_chat(self, chat_id: int, question: str) -> Reply:
        """The assistant's answer in the chat's conversation.

        In memory the assistant keeps the conversation itself. With Redis, the conversation's
        context is read from Redis, lent to the assistant for this one answer, and written back,
        so that any worker can carry on the conversation and it outlives a restart.
        """
        session = str(chat_id)
        if not isinstance(self.store, RedisChatStore):
            return await self._call(self.assistant.reply, question, session)
        saved = await self.store.load_context(chat_id)
        reply, context = await self._call(self._reply_with_context, question, session, saved)
        await self.store.put_context(chat_id, context)
        return reply

    def _reply_with_context(
        self, question: str, session: str, saved: Context | None
    ) -> tuple[Reply, Context | None]:
        """On the assistant's thread: answer with ``saved`` as the context; RETURNS the new one."""
        sessions = self.assistant.sessions
        sessions.reset(session)
        if saved is not None:
            sessions.update(session, saved)
        try:
            reply = self.assistant.reply(question, session)
            return reply, sessions.get(session)
        finally:
            sessions.reset(session)  # memory holds no conversation between answers

    async def _existing_state(self, chat_id: int) -> ChatState | None:
        """The chat's state if it has some that has not expired."""
        if isinstance(self.store, RedisChatStore):
            return await self.store.load(chat_id)
        if self.store.is_expired(chat_id, time.time()):
            await self._forget(chat_id)
        return self.store.chats.get(chat_id)

    async def _touched_state(self, chat_id: int) -> ChatState:
        """The chat's state (new if there is none), marked as seen now."""
        now = time.time()
        if isinstance(self.store, RedisChatStore):
            state = await self.store.load(chat_id) or ChatState(seen=now)
            state.seen = now
            return state
        if self.store.is_expired(chat_id, now):
            await self._forget(chat_id)
        return self.store.touch(chat_id, now)

    async def _save_state(self, chat_id: int, state: ChatState) -> None:
        """Write the chat's state back to Redis (in memory it is live already)."""
        if isinstance(self.store, RedisChatStore):
            await self.store.put(chat_id, state)

    async def _forget(self, chat_id: int) -> None:
        await self._call(self.assistant.forget, str(chat_id))
        if isinstance(self.store, RedisChatStore):
            await self.store.drop(chat_id)
        else:
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


def _message(update: Update) -> Message:
    """The message of an update whose handler's filters guarantee one."""
    message = update.effective_message
    if message is None:
        raise LookupError("an update without a message reached a message handler")
    return message


def _chat_id(update: Update) -> int:
    """The chat of an update whose handler's filters guarantee one."""
    chat = update.effective_chat
    if chat is None:
        raise LookupError("an update without a chat reached a chat handler")
    return chat.id


def _thread(message: Message) -> int | None:
    return message.message_thread_id if message.is_topic_message else None


def _reply_to(message_id: int | None) -> ReplyParameters | None:
    return None if message_id is None else ReplyParameters(message_id, allow_sending_without_reply=True)


def _site(url: str | None) -> str | None:
    """The website of a web address ('www.fda.gov' -> 'fda.gov'); None for anything not http(s)."""
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return parts.hostname.removeprefix("www.")


def _human_date(value: str) -> str:
    """A date for people; as written when it is not YYYY[-MM[-DD]] (state read back from Redis)."""
    try:
        return human_date(value)
    except ValueError:
        return value


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
