"""The front ends' words are data: a broken text file is named with its field by cgt-bot check."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.checks import front_end_problems
from bot.texts import TERMINAL_TEXTS, terminal_texts
from knowledge.errors import DataError


def test_texts_front_end_files_have_no_problems() -> None:
    assert [str(p) for p in front_end_problems()] == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("reset: ", "resett: "), "resett: Extra inputs are not permitted"),
        (("{count}", "{cuont}"), "pick_a_number: Value error, unknown placeholder {cuont}"),
    ],
)
def test_texts_a_broken_terminal_text_names_its_file_and_field(
    tmp_path: Path, change: tuple[str, str], expected: str
) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    broken = folder / TERMINAL_TEXTS.name
    broken.write_text(TERMINAL_TEXTS.read_text(encoding="utf-8").replace(*change), encoding="utf-8")
    with pytest.raises(DataError) as error:
        terminal_texts.__wrapped__(broken)
    assert "terminal.yaml" in str(error.value) and expected in " ".join(error.value.problems)
