"""The one data-file layer: one base model, one reader, problems named alike."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from pydantic import BaseModel

import bot.telegram.texts
import bot.texts
import intents.catalog
import intents.emergency
import knowledge.schema
from knowledge.datafile import DataModel, load_validated, read_items, read_model
from knowledge.errors import DataError
from knowledge.schema import Source

DATA_MODULES = [knowledge.schema, intents.catalog, intents.emergency, bot.texts, bot.telegram.texts]


@pytest.mark.parametrize("module", DATA_MODULES, ids=lambda m: m.__name__)
def test_datafile_every_data_model_derives_from_the_one_base(module: object) -> None:
    models = [
        cls
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, BaseModel) and cls.__module__ == getattr(module, "__name__", "")
    ]
    assert models
    for model in models:
        assert issubclass(model, DataModel), model.__name__
        assert model.model_config == DataModel.model_config, model.__name__


def test_datafile_text_is_stripped_everywhere(tmp_path: Path) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text("one:\n  title: >\n    A title\n  date: 2024\n", encoding="utf-8")
    items = read_items(path, tmp_path, Source, mapping=True)
    assert items.valid["one"].title == "A title" and items.problems == []


def test_datafile_items_are_validated_one_by_one(tmp_path: Path) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text(
        "good: {title: Good one, date: 2024}\nbad: {title: Bad one, date: soon}\n", encoding="utf-8"
    )
    items = read_items(path, tmp_path, Source, mapping=True)
    assert list(items.valid) == ["good"] and items.broken == {"bad"}
    (problem,) = items.problems
    assert str(problem).startswith("sources.yaml: bad.date: String should match pattern")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("- title: A list\n", "sources.yaml: (top): should be a mapping of Source items"),
        ("one: [unclosed\n", "sources.yaml: line 2: "),
    ],
)
def test_datafile_a_file_of_the_wrong_shape_is_one_problem(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text(text, encoding="utf-8")
    problems = read_items(path, tmp_path, Source, mapping=True).problems
    assert len(problems) == 1 and str(problems[0]).startswith(expected)


def test_datafile_reads_json_too(tmp_path: Path) -> None:
    folder = tmp_path / "more"
    folder.mkdir()
    path = folder / "source.json"
    path.write_text('{"title": "From JSON", "date": "2025-01", "colour": 1}', encoding="utf-8")
    assert [str(p) for p in read_model(path, tmp_path, Source)[1]] == [
        "more/source.json: colour: Extra inputs are not permitted"
    ]
    path.write_text('{"title": "From JSON",', encoding="utf-8")
    assert str(read_model(path, tmp_path, Source)[1][0]).startswith("more/source.json: line 1: ")


def test_datafile_a_missing_file_is_a_data_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"^gone.yaml: cannot be read \(FileNotFoundError\)$"):
        load_validated(tmp_path / "gone.yaml", tmp_path, Source)
