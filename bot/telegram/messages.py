"""Text messages: who is asked (every private message, group messages that mention the bot or reply
to it), and sending an answer in order, split below Telegram's limit, with its buttons.

Sends that meet a 429 or a network error are retried with back-off by
:class:`~bot.telegram.state.RetryingRateLimiter`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.constants import ChatAction, MessageEntityType
from telegram.error import TelegramError
from telegram.ext import ContextTypes

from bot.reply import Reply
from bot.telegram.core import FrontEndCore, message_of, reply_to, sent_via, thread_of
from bot.telegram.format import render_html, split_text
from bot.telegram.state import ChatState
from bot.telegram.texts import fill_html

__all__ = ["MAX_SUGGESTIONS", "TYPING_DELAY", "TYPING_REFRESH", "Messages"]

logger = logging.getLogger(__name__)

TYPING_DELAY = 0.3  # show "typing…" only for answers that take longer than this
TYPING_REFRESH = 4.0  # Telegram shows the action for about 5 seconds
MAX_SUGGESTIONS = 4


class Messages(FrontEndCore):
    """Answers typed messages, and sends every answer of the assistant."""

    async def on_private_message(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Answer every message of a private chat; ask for typed words where there are none."""
        message = message_of(update)
        if sent_via(message, context.bot):
            return
        _, question = self._addressed(message, context.bot)
        quote = message.message_id if update.edited_message else None
        await self._respond(context.bot, message, question, quote=quote)

    async def on_group_message(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Answer a group message only when it mentions the bot or replies to it."""
        message = message_of(update)
        addressed, question = self._addressed(message, context.bot)
        if not addressed or sent_via(message, context.bot):
            return
        await self._respond(context.bot, message, question, quote=message.message_id)

    async def _respond(self, bot: Bot, message: Message, question: str, *, quote: int | None) -> None:
        if question:
            await self._answer(bot, message.chat_id, question, thread_id=thread_of(message), quote=quote)
        elif message.text or message.caption:
            await self._send(
                bot, message, fill_html(self.texts.mention_only, bot_username=bot.username), quote
            )
        else:
            await self._send(bot, message, self.texts.please_type, quote)

    async def _send(self, bot: Bot, message: Message, text: str, quote: int | None) -> None:
        await bot.send_message(
            message.chat_id, text, message_thread_id=thread_of(message), reply_parameters=reply_to(quote)
        )

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
                reply_parameters=reply_to(quote) if index == 0 else None,
            )

    def _reply_keyboard(self, reply: Reply, state: ChatState) -> InlineKeyboardMarkup | None:
        """Did-you-mean choices (two a row), suggestions (one a row), then "Sources"; None if none.

        A choice asks the suggestion that names its product (the question again with that name),
        else the product question of the texts. What a press does is :mod:`bot.telegram.buttons`.
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
