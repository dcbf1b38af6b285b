"""cgt-bot: plain-language answers about FDA-approved cell and gene therapies."""

from bot.assistant import Assistant
from bot.errors import CgtBotError, DataError, UsageError
from bot.reply import Reply

__all__ = ["Assistant", "CgtBotError", "DataError", "Reply", "UsageError"]
__version__ = "0.1.0"
