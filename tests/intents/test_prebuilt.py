"""The shipped calibration (intents/data/prebuilt.json): current, used on a fresh cache, and safe.

A first start fits only the final models when the shipped results match the catalog; these
tests make sure they always match in the repository, that the models trained from them are
the models a full training gives, and that a stale or broken file only costs time.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bot import Assistant
from intents import emergency, prebuilt
from intents.matcher import IntentMatcher

REGENERATE = "intents/data/prebuilt.json is stale: run python scripts/make_prebuilt.py and commit it"


def _shipped() -> dict[str, Any]:
    return json.loads(prebuilt.PATH.read_text(encoding="utf-8"))


def _fresh_matcher(assistant: Assistant, cache: Path, monkeypatch: pytest.MonkeyPatch) -> IntentMatcher:
    """A copy of the session's matcher over an empty cache, so training it changes nothing shared."""
    monkeypatch.setenv("CGT_BOT_CACHE", str(cache))
    return copy.copy(assistant.matcher)


def test_prebuilt_file_is_what_the_catalog_gives_now(assistant: Assistant) -> None:
    generated = prebuilt.generate(assistant.matcher, assistant.resolver)
    shipped = _shipped()
    assert generated["intents"]["key"] == shipped["intents"]["key"], REGENERATE
    assert generated["emergency"]["key"] == shipped["emergency"]["key"], REGENERATE
    assert generated == shipped, REGENERATE


def test_prebuilt_intent_model_is_the_fully_trained_model(assistant: Assistant) -> None:
    matcher = copy.copy(assistant.matcher)
    full = matcher.train(assistant.resolver)
    full_vocabulary = matcher.vocabulary
    shipped = prebuilt.read("intents", matcher._training_key(assistant.resolver))
    assert shipped is not None, REGENERATE
    quick = matcher.train(assistant.resolver, shipped)
    assert quick.index == full.index and quick.labels == full.labels
    assert np.array_equal(quick.weights, full.weights) and np.array_equal(quick.bias, full.bias)
    assert matcher.vocabulary == full_vocabulary


def test_prebuilt_fresh_cache_skips_masking_and_held_out_fits(
    assistant: Assistant, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object, **kwargs: object) -> dict[str, Any]:
        raise AssertionError("calibrated from scratch although the shipped results match")

    matcher = _fresh_matcher(assistant, tmp_path, monkeypatch)
    monkeypatch.setattr(IntentMatcher, "calibration", refuse)
    monkeypatch.setattr(emergency, "calibration", refuse)
    told: list[str] = []
    matcher.on_training = lambda: told.append("training")
    model = matcher._load_or_train(assistant.resolver)
    assert np.array_equal(model.weights, assistant.matcher.model.weights)
    assert matcher.vocabulary == assistant.matcher.vocabulary
    # The slow-first-start notice is for a full training only; this one is a fraction of a second.
    assert told == []
    screen = assistant.matcher.screen
    model_e = emergency.load_model(*screen._extra, screen._rules_catch)
    assert model_e.threshold == screen.model.threshold
    assert model_e.held_out == screen.model.held_out
    assert np.array_equal(model_e.model.weights, screen.model.model.weights)


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        "[]",
        '{"intents": {"key": "another catalog", "temperature": 0.5, "masked": {}}}',
    ],
)
def test_prebuilt_missing_stale_or_broken_file_gives_nothing(tmp_path: Path, content: str) -> None:
    path = tmp_path / "prebuilt.json"
    assert prebuilt.read("intents", "any", path) is None
    path.write_text(content, encoding="utf-8")
    assert prebuilt.read("intents", "any", path) is None
    assert prebuilt.read("emergency", "any", path) is None


def test_prebuilt_results_of_the_wrong_shape_are_trained_in_full(
    assistant: Assistant, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    matcher = _fresh_matcher(assistant, tmp_path, monkeypatch)
    key = matcher._training_key(assistant.resolver)
    broken = copy.deepcopy(_shipped())
    intent = next(iter(broken["intents"]["masked"]))
    broken["intents"]["masked"][intent] = broken["intents"]["masked"][intent][:-1]
    path = tmp_path / "broken.json"
    prebuilt.write(broken, path)
    shipped = prebuilt.read("intents", key, path)
    assert shipped is not None and not matcher._fits(shipped)
    told: list[str] = []
    matcher.on_training = lambda: told.append("training")
    monkeypatch.setattr(prebuilt, "PATH", path)
    model = matcher._load_or_train(assistant.resolver)
    assert told == ["training"]
    assert np.array_equal(model.weights, assistant.matcher.model.weights)
