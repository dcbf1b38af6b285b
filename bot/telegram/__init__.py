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

from bot.telegram.app import (
    ALLOWED_UPDATES,
    CHAT_EXPIRY,
    TelegramFrontEnd,
    api_root,
    build_application,
    run,
)
from bot.telegram.state import ChatStore, PerChatUpdateProcessor, RetryingRateLimiter
from bot.telegram.texts import COMMANDS, Texts, load_texts

__all__ = [
    "ALLOWED_UPDATES",
    "CHAT_EXPIRY",
    "COMMANDS",
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
