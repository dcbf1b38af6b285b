"""Inline mode (``@bot question`` in any chat): short, shareable answers with the disclaimer, never
personalised and without a conversation.
"""

from __future__ import annotations

from telegram import InlineQueryResultArticle, InlineQueryResultsButton, InputTextMessageContent, Update
from telegram.constants import ParseMode
from telegram.ext import ContextTypes

from bot.reply import Reply
from bot.telegram.core import FrontEndCore
from bot.telegram.format import render_html, shorten
from bot.telegram.texts import fill_html

__all__ = ["INLINE_ANSWER_LIMIT", "INLINE_CACHE_SECONDS", "INLINE_RESULTS", "InlineMode"]

INLINE_RESULTS = 4
INLINE_ANSWER_LIMIT = 900
INLINE_CACHE_SECONDS = 300


class InlineMode(FrontEndCore):
    """Answers inline queries."""

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
