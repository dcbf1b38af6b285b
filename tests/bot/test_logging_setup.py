"""Logging as the CLI sets it up: no token in any line, chatty loggers kept quiet."""

from __future__ import annotations

import io
import logging

import pytest

from bot.errors import UsageError
from bot.logging_setup import configure_logging, scrub

TOKEN = "7000000001:AAHfakeTokenForTestsOnly_0123456789xyz"


@pytest.mark.parametrize(
    "text",
    [
        f"POST https://api.telegram.org/bot{TOKEN}/getMe",
        f"The token `{TOKEN}` was rejected by the server.",
        f"url-encoded {TOKEN.replace(':', '%3A')}",
    ],
)
def test_logging_setup_scrub_removes_tokens(text: str) -> None:
    assert TOKEN.split(":")[1] not in scrub(text)
    assert "[redacted-token]" in scrub(text)


def test_logging_setup_scrub_keeps_ordinary_numbers() -> None:
    assert scrub("chat 1234567: ok at 12:30") == "chat 1234567: ok at 12:30"


@pytest.mark.usefixtures("restore_logging")
def test_logging_setup_scrubs_messages_arguments_and_tracebacks() -> None:
    stream = io.StringIO()
    configure_logging("DEBUG", stream=stream)
    log = logging.getLogger("bot.test")
    log.warning("plain %s", TOKEN)
    log.warning(f"inline {TOKEN}")
    try:
        raise ValueError(f"bad token {TOKEN}")
    except ValueError:
        log.exception("failed")
    output = stream.getvalue()
    assert TOKEN not in output and TOKEN.split(":")[1] not in output
    assert output.count("[redacted-token]") == 3
    assert "ValueError" in output


@pytest.mark.parametrize(
    ("level", "httpx", "telegram", "root"),
    [
        ("DEBUG", logging.WARNING, logging.INFO, logging.DEBUG),
        ("info", logging.WARNING, logging.INFO, logging.INFO),
        ("WARNING", logging.WARNING, logging.WARNING, logging.WARNING),
        ("ERROR", logging.ERROR, logging.ERROR, logging.ERROR),
    ],
)
@pytest.mark.usefixtures("restore_logging")
def test_logging_setup_levels(level: str, httpx: int, telegram: int, root: int) -> None:
    configure_logging(level, stream=io.StringIO())
    assert logging.getLogger().level == root
    assert logging.getLogger("httpx").level == httpx
    assert logging.getLogger("httpcore").level == httpx
    assert logging.getLogger("telegram").level == telegram


@pytest.mark.usefixtures("restore_logging")
def test_logging_setup_second_call_replaces_its_handler() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging("INFO", stream=first)
    configure_logging("INFO", stream=second)
    logging.getLogger("bot.test").info("once")
    assert first.getvalue() == ""
    assert second.getvalue().count("once") == 1


def test_logging_setup_rejects_unknown_level() -> None:
    with pytest.raises(UsageError, match="log level"):
        configure_logging("LOUD")
