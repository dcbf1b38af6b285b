"""The language pipeline's trimmed lemma table, kept in the disk cache (bot.language)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bot.language import build_nlp

KEEP = frozenset({"running", "run", "mice", "mouse", "infusions", "infusion"})


def _lemmas(keep: frozenset[str]) -> list[str]:
    return [t.lemma_ for t in build_nlp(keep)("running mice infusions")]


def test_lemma_table_is_keyed_by_the_words_kept(empty_cache: Path) -> None:
    assert build_nlp(KEEP).meta["lemma_table"] != build_nlp(KEEP | {"cells"}).meta["lemma_table"]
    assert len(list((empty_cache / "lemmatizer").iterdir())) == 2


@pytest.mark.parametrize("damage", [b"", b"\x93NUMPY not a table", None])
def test_lemma_table_survives_a_corrupt_entry(
    empty_cache: Path, caplog: pytest.LogCaptureFixture, damage: bytes | None
) -> None:
    expected = _lemmas(KEEP)
    assert expected == ["run", "mouse", "infusion"]
    (entry,) = (empty_cache / "lemmatizer").iterdir()
    table = entry / "lemmatizer" / "lookups" / "lookups.bin"
    if damage is None:
        table.unlink()
    else:
        table.write_bytes(damage)
    with caplog.at_level(logging.WARNING, logger="knowledge.cache"):
        assert _lemmas(KEEP) == expected
    assert "lemmatizer" in caplog.text
    assert table.stat().st_size > 100  # written again
    assert _lemmas(KEEP) == expected
