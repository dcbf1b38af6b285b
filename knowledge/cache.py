"""Where cgt-bot keeps what it can rebuild: the trained classifier, parsed data, compiled templates."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir"]


def cache_dir() -> Path:
    """``$CGT_BOT_CACHE``, else ``$XDG_CACHE_HOME/cgt-bot``, else ``~/.cache/cgt-bot``."""
    configured = os.environ.get("CGT_BOT_CACHE")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cgt-bot"
