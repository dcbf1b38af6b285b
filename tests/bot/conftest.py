"""Fixtures of the front-end tests: the real chat in a 60-column pseudo-terminal."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator

import pexpect
import pytest

from bot import Assistant
from tests.auxil.terminal import PROMPT_STARTS, WIDTH


@pytest.fixture(scope="module")
def warm_cache(assistant: Assistant) -> str:
    """The cache folder the session's assistant filled, so the chat starts without training."""
    from knowledge.cache import cache_dir

    return str(cache_dir())


@pytest.fixture
def chat(warm_cache: str) -> Iterator[pexpect.spawn]:
    """``python -m bot chat`` in a 60-column pseudo-terminal."""
    env = {
        **os.environ,
        "COLUMNS": str(WIDTH),
        "LINES": "40",
        "TERM": "xterm-256color",
        "CGT_BOT_CACHE": warm_cache,
        "PROMPT_TOOLKIT_NO_CPR": "1",  # pexpect does not answer cursor position requests
    }
    env.pop("NO_COLOR", None)
    child = pexpect.spawn(
        sys.executable, ["-m", "bot", "chat"], env=env, dimensions=(40, WIDTH), encoding="utf-8", timeout=60
    )
    child.expect_exact(PROMPT_STARTS)
    yield child
    if child.isalive():
        child.terminate(force=True)


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Put the root logger and the quieted loggers back as they were."""
    root = logging.getLogger()
    names = ("httpx", "httpcore", "telegram")
    saved = root.level, list(root.handlers), {name: logging.getLogger(name).level for name in names}
    yield
    root.setLevel(saved[0])
    root.handlers[:] = saved[1]
    for name, level in saved[2].items():
        logging.getLogger(name).setLevel(level)
