"""What every handler of the Telegram front end shares: the assistant, the texts, the products and
each chat's state.

The assistant is called from one thread, one call at a time, off the event loop; with Redis, a
chat's conversation is lent to it for one answer at a time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from telegram import Bot, Message, ReplyParameters, Update

from bot.reply import Reply
from bot.session import Context
from bot.telegram.format import brand_pattern
from bot.telegram.redis import RedisChatStore
from bot.telegram.state import ChatState, ChatStore
from bot.telegram.texts import Texts

if TYPE_CHECKING:
    from bot import Assistant

__all__ = ["FrontEndCore", "chat_of", "message_of", "reply_to", "sent_via", "thread_of"]

_T = TypeVar("_T")


class FrontEndCore:
    """The assistant, the words, the products and the per-chat state the handlers share.

    Args:
        assistant (Assistant): The assistant that answers every question.
        texts (Texts): The words of the front end.
        store (ChatStore | RedisChatStore): Per-chat state, in memory or shared in Redis.
    """

    def __init__(self, assistant: Assistant, texts: Texts, store: ChatStore | RedisChatStore) -> None:
        self.assistant = assistant
        self.texts = texts
        self.store = store
        knowledge = assistant.knowledge
        self.products = knowledge.products
        #: The products shown in lists (no members of a family), by brand; asked for once.
        self.listed = knowledge.listed_products()
        self._brands = brand_pattern(product.brand for product in self.products.values())
        self._listed_by_kind = {
            kind: [product for product in self.listed if product.kind == kind]
            for kind in texts.products.kinds
        }
        self._kinds = [kind for kind in texts.products.kinds if self._listed_by_kind[kind]]
        # The assistant is called from one thread, one call at a time, off the event loop.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cgt-assistant")

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


def message_of(update: Update) -> Message:
    """The message of an update whose handler's filters guarantee one."""
    message = update.effective_message
    if message is None:
        raise LookupError("an update without a message reached a message handler")
    return message


def chat_of(update: Update) -> int:
    """The chat of an update whose handler's filters guarantee one."""
    chat = update.effective_chat
    if chat is None:
        raise LookupError("an update without a chat reached a chat handler")
    return chat.id


def thread_of(message: Message) -> int | None:
    """The forum topic of ``message``; None outside topics."""
    return message.message_thread_id if message.is_topic_message else None


def reply_to(message_id: int | None) -> ReplyParameters | None:
    """Quote ``message_id`` (None: no quote), sending anyway if it is gone."""
    return None if message_id is None else ReplyParameters(message_id, allow_sending_without_reply=True)


def sent_via(message: Message, bot: Bot) -> bool:
    """Whether ``message`` was sent through this bot's inline mode (an answer, not a question)."""
    return message.via_bot is not None and message.via_bot.id == bot.id
