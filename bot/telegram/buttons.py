"""Callback buttons: suggestions and did-you-mean choices, the start examples, the products browser
and the Sources button under an answer.

A button carries a short key (``q:``, ``r:`` kept in the chat's state) or an index (``s:``, ``k:``,
``p:``, ``m``); an old or unknown one gets "please ask again".
"""

from __future__ import annotations

import html
from typing import Any
from urllib.parse import urlsplit

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.error import BadRequest
from telegram.ext import ContextTypes

from bot.reply import SourceRef
from bot.telegram.core import reply_to
from bot.telegram.format import MESSAGE_LIMIT, escape, utf16_len
from bot.telegram.messages import Messages
from bot.telegram.texts import fill_html, human_date, plain_text

__all__ = ["Buttons"]


class Buttons(Messages):
    """Answers button presses, and builds the products browser."""

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

    # -- the Sources button -----------------------------------------------------------------

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
                reply_parameters=reply_to(quote) if index == 0 else None,
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

    # -- the products browser ---------------------------------------------------------------

    async def _browse(self, message: Message, kind_index: str | None) -> None:
        """Show the kinds (``kind_index`` None) or the products of one kind, editing ``message``."""
        if kind_index is not None and kind_index.isdigit() and int(kind_index) < len(self._kinds):
            kind = self._kinds[int(kind_index)]
            listed = self._listed_by_kind[kind]
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
