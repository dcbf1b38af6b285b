"""The commands: /start /help /products /whatsnew /about /privacy /reset /forget, and the answer to a
command the bot does not have.
"""

from __future__ import annotations

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ChatType
from telegram.ext import ContextTypes

from bot.telegram.buttons import Buttons
from bot.telegram.core import chat_of, message_of, thread_of
from bot.telegram.format import escape
from bot.telegram.redis import RedisChatStore
from bot.telegram.state import ChatStore
from bot.telegram.texts import fill_html, human_date

__all__ = ["Commands"]


class Commands(Buttons):
    """Answers the commands of the menu (:data:`~bot.telegram.texts.COMMANDS`)."""

    async def on_start(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Say what the bot is and is not; with a product as payload, open on that product."""
        message = message_of(update)
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
        await self._answer(context.bot, message.chat_id, question, thread_id=thread_of(message))

    async def on_help(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Explain how to ask and what the commands do."""
        await message_of(update).reply_text(fill_html(self.texts.help, bot_username=context.bot.username))

    async def on_products(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Offer the kinds of therapy as buttons."""
        await message_of(update).reply_text(
            self.texts.products.choose_kind, reply_markup=self._kinds_keyboard()
        )

    async def on_whatsnew(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Say what changed in the last year: the assistant's answer to the what's-new question.

        Asked in the chat's conversation like a typed question, so "the second one" can follow.
        """
        message = message_of(update)
        quote = None if message.chat.type == ChatType.PRIVATE else message.message_id
        await self._answer(
            context.bot,
            message.chat_id,
            self.texts.whats_new_question,
            thread_id=thread_of(message),
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
        text = self.texts.about.format(count=escape(len(self.listed)), reviewed=reviewed)
        await message_of(update).reply_text(text)

    async def on_privacy(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Say what is kept about the chat and for how long."""
        text = fill_html(self.texts.privacy, minutes=round(self.store.expiry / 60))
        if self.store.path is not None:
            text += "\n\n" + self.texts.privacy_saved
        elif self.store.shared:
            text += "\n\n" + self.texts.privacy_shared
        await message_of(update).reply_text(text)

    async def on_reset(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Clear the conversation context of the chat."""
        chat_id = chat_of(update)
        await self._call(self.assistant.reset, str(chat_id))
        if isinstance(self.store, RedisChatStore):
            await self.store.drop_context(chat_id)
        await message_of(update).reply_text(self.texts.reset_done)

    async def on_forget(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Remove everything held about the chat, on disk too."""
        await self._forget(chat_of(update))
        if isinstance(self.store, ChatStore):
            self.store.save()
        await message_of(update).reply_text(self.texts.forget_done)

    async def on_unknown_command(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Answer a command the bot does not have (private chats only)."""
        await message_of(update).reply_text(self.texts.unknown_command)
