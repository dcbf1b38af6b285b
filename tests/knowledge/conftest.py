"""Fixtures of the knowledge tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from knowledge import DATA_DIR


@pytest.fixture()
def data_copy(tmp_path: Path) -> Path:
    """A copy of the packaged knowledge files to break on purpose."""
    target = tmp_path / "data"
    shutil.copytree(DATA_DIR, target)
    return target
