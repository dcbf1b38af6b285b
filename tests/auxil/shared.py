"""Where the project's shared folder (``../shared``) is, from any checkout."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def shared_path(relative: str) -> Path:
    """``shared/<relative>`` beside the checkout or beside a parent folder (a worktree under wt/).

    When it is nowhere, the path beside the checkout, so a skip reason can name it.
    """
    return next(
        (p / "shared" / relative for p in REPO.parents if (p / "shared" / relative).exists()),
        REPO.parent / "shared" / relative,
    )
