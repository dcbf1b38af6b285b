"""The one disk cache every part of the bot keeps its rebuildable results in (knowledge.cache)."""

from __future__ import annotations

import json
import logging
import os
import time
import types
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from bot import Assistant
from knowledge import cache
from knowledge.cache import cache_key, cached, entry_folder, prune
from knowledge.loader import read_yaml
from knowledge.resolver import _tokenized


def _text_cache(kind: str, key: str, value: str, built: list[str] | None = None) -> str:
    """A cache of one text file: what ``build`` gives is ``value``; every build is recorded."""

    def build() -> str:
        if built is not None:
            built.append(key)
        return value

    def save(text: str, folder: Path) -> None:
        (folder / "value.txt").write_text(text, encoding="utf-8")

    def load(folder: Path) -> str:
        text = (folder / "value.txt").read_text(encoding="utf-8")
        if not text.startswith("value"):
            raise ValueError("not a value")
        return text

    return cached(kind, key, build=build, save=save, load=load)


def _build_only(build: Callable[[], str]) -> str:
    def load(folder: Path) -> str:
        return (folder / "value.txt").read_text(encoding="utf-8")

    return cached("texts", "k1", build=build, save=lambda value, folder: None, load=load)


def _library(version: str) -> types.ModuleType:
    module = types.ModuleType("somelib")
    module.__version__ = version  # type: ignore[attr-defined]
    return module


def test_key_changes_when_any_input_changes() -> None:
    inputs: list[object] = [b"raw bytes", "some text", {"steps": 10, "names": ["a", "b"]}, 3]
    key = cache_key(*inputs, libraries=[_library("1.0")])
    assert key == cache_key(*inputs, libraries=[_library("1.0")])
    edited: list[object] = [b"raw bytes!", "some text!", {"steps": 11, "names": ["a", "b"]}, 4]
    for i in range(len(inputs)):
        changed = list(inputs)
        changed[i] = edited[i]
        assert cache_key(*changed, libraries=[_library("1.0")]) != key, f"input {i} is not in the key"
    assert cache_key(*inputs, libraries=[_library("1.1")]) != key
    assert cache_key(*inputs) != key


def test_key_does_not_confuse_inputs_that_join_alike() -> None:
    assert cache_key("ab", "c") != cache_key("a", "bc")
    assert cache_key(b"1") != cache_key("1") != cache_key(1)
    assert cache_key(["a"], ["b"]) != cache_key(["a", "b"])
    # A dict's order is how it was written, not what it holds.
    assert cache_key({"a": 1, "b": 2}) == cache_key({"b": 2, "a": 1})


def test_entry_is_built_once_then_read(empty_cache: Path) -> None:
    built: list[str] = []
    assert _text_cache("texts", "k1", "value one", built) == "value one"
    assert _text_cache("texts", "k1", "value one", built) == "value one"
    assert built == ["k1"]
    assert (empty_cache / "texts" / "k1" / "value.txt").read_text(encoding="utf-8") == "value one"


@pytest.mark.parametrize("damage", ["not a value", None])
def test_corrupt_entry_is_logged_deleted_and_rebuilt(
    empty_cache: Path, caplog: pytest.LogCaptureFixture, damage: str | None
) -> None:
    built: list[str] = []
    _text_cache("texts", "k1", "value one", built)
    stored = empty_cache / "texts" / "k1" / "value.txt"
    if damage is None:
        stored.unlink()
    else:
        stored.write_text(damage, encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="knowledge.cache"):
        assert _text_cache("texts", "k1", "value one", built) == "value one"
    assert built == ["k1", "k1"]
    assert "texts" in caplog.text and "k1" in caplog.text
    assert stored.read_text(encoding="utf-8") == "value one"


def test_a_fault_in_building_is_not_hidden(empty_cache: Path) -> None:
    def build() -> str:
        raise RuntimeError("a bug in the code that builds")

    with pytest.raises(RuntimeError, match="a bug"):
        _build_only(build)


def test_unwritable_cache_only_costs_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A file where the folder should be: no folder can be made under it, even as root.
    blocked = tmp_path / "blocked"
    blocked.write_text("", encoding="utf-8")
    monkeypatch.setenv("CGT_BOT_CACHE", str(blocked / "cache"))
    built: list[str] = []
    assert _text_cache("texts", "k1", "value one", built) == "value one"
    assert _text_cache("texts", "k1", "value one", built) == "value one"
    assert built == ["k1", "k1"]
    assert entry_folder("templates", "k1") is None


def test_value_that_cannot_be_saved_is_only_not_kept(empty_cache: Path) -> None:
    def save(value: object, folder: Path) -> None:
        raise TypeError("JSON cannot hold it")

    def load(folder: Path) -> set[int]:
        return set(json.loads((folder / "value.json").read_text(encoding="utf-8")))

    assert cached("texts", "k1", build=lambda: {1, 2}, save=save, load=load) == {1, 2}
    assert not (empty_cache / "texts" / "k1").exists()
    assert not [p for p in (empty_cache / "texts").iterdir()], "a scratch folder was left"


def _age(folder: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(folder, (then, then))


def test_pruning_keeps_the_most_recently_used(empty_cache: Path) -> None:
    for i in range(cache.KEEP + 2):
        folder = empty_cache / "texts" / f"k{i}"
        folder.mkdir(parents=True)
        (folder / "value.txt").write_text(f"value {i}", encoding="utf-8")
        _age(folder, 1000 - i)  # k0 the oldest
    # Reading marks an entry used: k0 is then the newest of the old ones.
    assert _text_cache("texts", "k0", "never built") == "value 0"
    _text_cache("texts", "new", "value new")
    kept = sorted(p.name for p in (empty_cache / "texts").iterdir())
    newest = [f"k{i}" for i in range(1, cache.KEEP + 2)][-(cache.KEEP - 2) :]
    assert kept == sorted(["k0", "new", *newest])


def test_pruning_removes_what_is_not_an_entry(empty_cache: Path) -> None:
    (empty_cache / "texts").mkdir(parents=True)
    (empty_cache / "texts" / "abc.json").write_text("{}", encoding="utf-8")  # an earlier layout
    (empty_cache / "texts-abc").mkdir()  # the flat layout of earlier versions
    stale = empty_cache / "texts" / ".scratch-dead"
    stale.mkdir()
    _age(stale, 2 * 3600)
    fresh = empty_cache / "texts" / ".scratch-writing"
    fresh.mkdir()
    _text_cache("texts", "k1", "value one")
    assert sorted(p.name for p in (empty_cache / "texts").iterdir()) == [".scratch-writing", "k1"]
    assert not (empty_cache / "texts-abc").exists()


def test_prune_of_a_missing_kind_does_nothing(empty_cache: Path) -> None:
    prune("nothing")
    assert not empty_cache.exists()


def test_entry_folder_is_made_once_and_pruned(empty_cache: Path) -> None:
    first = entry_folder("templates", "k1")
    assert first is not None and first.is_dir()
    (first / "compiled").write_text("x", encoding="utf-8")
    assert entry_folder("templates", "k1") == first
    assert (first / "compiled").exists()
    _age(first, 1000)
    for i in range(cache.KEEP):
        entry_folder("templates", f"other{i}")
    assert not first.exists()
    assert len(list((empty_cache / "templates").iterdir())) == cache.KEEP


def _only_entry(folder: Path) -> Path:
    (entry,) = [p for p in folder.iterdir() if p.is_dir()]
    return entry


def test_parsed_data_survives_a_corrupt_entry(
    empty_cache: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data_file = tmp_path / "data" / "facts.yaml"
    data_file.parent.mkdir()
    data_file.write_text("id: kymriah\nnames: [Kymriah, tisagenlecleucel]\n", encoding="utf-8")
    expected = {"id": "kymriah", "names": ["Kymriah", "tisagenlecleucel"]}
    assert read_yaml(data_file, data_file.parent) == (expected, [])
    stored = _only_entry(empty_cache / "parsed") / "data.json"
    stored.write_text('{"id": "kym', encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="knowledge.cache"):
        assert read_yaml(data_file, data_file.parent) == (expected, [])
    assert "parsed" in caplog.text
    assert json.loads(stored.read_text(encoding="utf-8")) == expected


def test_name_tokens_survive_a_corrupt_entry(assistant: Assistant, empty_cache: Path) -> None:
    names = ["Kymriah", "beti-cel", "CAR-T"]
    tokens = _tokenized(assistant.nlp, names)
    assert tokens == [["Kymriah"], ["beti", "-", "cel"], ["CAR", "-", "T"]]
    stored = _only_entry(empty_cache / "names") / "tokens.json"
    for damage in ("[[", '[["Kymriah"]]'):  # cut short; another entry's list
        stored.write_text(damage, encoding="utf-8")
        assert _tokenized(assistant.nlp, names) == tokens
    assert json.loads(stored.read_text(encoding="utf-8")) == tokens


def test_assistant_answers_with_an_unwritable_cache(
    assistant: Assistant, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocked = tmp_path / "blocked"
    blocked.write_text("", encoding="utf-8")
    monkeypatch.setenv("CGT_BOT_CACHE", str(blocked / "cache"))
    fresh = Assistant()
    question = "how much does zolgensma cost?"
    assert fresh.reply(question).text == assistant.reply(question).text
    assert np.array_equal(fresh.matcher.model.weights, assistant.matcher.model.weights)
