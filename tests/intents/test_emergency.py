"""The emergency screen: every safety set, readings past their limits, crisis replies, the model."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from bot import Assistant
from bot.cli import main
from intents.emergency import load_model, load_sign_groups, load_vitals

DATA = Path(__file__).resolve().parents[1] / "data"
EMERGENCY_SETS = sorted(p.name for p in DATA.glob("safety_emergency*.jsonl"))
QUESTION_SETS = sorted(
    p.name for p in [*DATA.glob("safety_side_effects*.jsonl"), *DATA.glob("safety_questions*.jsonl")]
)
FALSE_ALARM = "If this is not happening now, ask me again and I will answer your question."


def _rows(name: str) -> list[dict]:
    return [
        json.loads(line) for line in (DATA / name).read_text(encoding="utf-8").splitlines() if line.strip()
    ]


@pytest.mark.parametrize("name", EMERGENCY_SETS)
def test_emergency_every_message_of_every_emergency_set_is_urgent(assistant: Assistant, name: str) -> None:
    rows = _rows(name)
    assert rows and all(row["urgent"] for row in rows)
    missed = [row["text"] for row in rows if not assistant.reply(row["text"]).urgent]
    assert missed == []


@pytest.mark.parametrize("name", QUESTION_SETS)
def test_emergency_no_question_of_any_question_set_is_urgent(assistant: Assistant, name: str) -> None:
    rows = _rows(name)
    assert rows and not any(row.get("urgent") for row in rows)
    false_alarms = [row["text"] for row in rows if assistant.reply(row["text"]).urgent]
    assert false_alarms == []


def test_emergency_sets_cover_fresh_blind_messages() -> None:
    assert len(EMERGENCY_SETS) >= 1 and len(QUESTION_SETS) >= 1


def _readings() -> list[tuple[str, bool]]:
    """Readings just past and well inside each limit of ``emergency_vitals.yaml``."""
    vitals = load_vitals()
    t, bp, hr = vitals.temp, vitals.bp, vitals.rate
    return [
        (f"my son is at {t.fever_f + 0.6:.1f} after car t", True),
        (f"{t.fever_f + 1.6:.1f} degrees after car t", True),
        (f"temp {t.fever_c + 1.4:.1f} after his infusion", True),
        (f"she has {t.fever_c + 1:.1f} c and chills", True),
        (f"bp {bp.systolic_below - 5}/{bp.systolic_below - 40} on the home monitor", True),
        (f"pulse {hr.above + 15} after kymriah", True),
        (f"how do I read a bp of {bp.systolic_below + 30}/80?", False),
        (f"is {t.fever_f:.1f} a fever after car t?", False),
        (f"what heart rate is too fast after car t, {hr.above + 10}?", False),
    ]


@pytest.mark.parametrize(("text", "urgent"), _readings())
def test_emergency_readings_are_compared_with_the_limits(
    assistant: Assistant, text: str, urgent: bool
) -> None:
    assert assistant.reply(text).urgent is urgent


@pytest.mark.parametrize("group", load_sign_groups(), ids=lambda g: g.name)
def test_emergency_every_sign_group_names_its_label_source(group: object) -> None:
    assert group.source.strip() and group.signs  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("text", "reason", "line"),
    [
        ("i want to kill myself", "self_harm", "988"),
        ("i took a whole bottle of my pills", "overdose", "1-800-222-1222"),
        ("my dad has a fever of 103 after car t", "symptoms", "911"),
    ],
)
def test_emergency_reply_names_the_right_line_and_the_false_alarm_sentence(
    assistant: Assistant, text: str, reason: str, line: str
) -> None:
    reply = assistant.reply(text)
    assert reply.urgent and assistant.matcher.safety(assistant.catalog.expand(text)).reason == reason
    assert line in reply.text and FALSE_ALARM in reply.text


def test_emergency_reply_is_alone_with_no_product_answer(assistant: Assistant) -> None:
    product = assistant.knowledge.product("kymriah")
    reply = assistant.reply("my dad had kymriah and now he is burning up and shaking, how much did it cost?")
    assert reply.urgent and reply.suggestions == [] and reply.did_you_mean == []
    assert reply.text.startswith("This may be an emergency.")
    for fact in (product.overview, product.uses, product.side_effects):
        assert fact is None or fact.text not in reply.text


def test_emergency_cli_ask_json_is_urgent_with_no_suggestions(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ask", "--json", "my son is burning up after car t"]) == 0
    reply = json.loads(capsys.readouterr().out)
    assert reply["urgent"] is True and reply["suggestions"] == []


def test_emergency_screen_keeps_every_held_out_emergency(assistant: Assistant) -> None:
    # The model's threshold is set so that, with the rules, no held-out emergency is missed; the
    # model alone may miss one the rules catch.
    model = assistant.matcher.screen.model
    assert 0 < model.threshold < 1
    assert model.held_out["screen_recall"] == 1.0
    assert model.held_out["recall"] >= 0.9


@pytest.mark.parametrize(
    ("text", "urgent"),
    [
        ("my son had a fever after car t last year, is that common?", False),
        ("she had a seizure back in 2021 after yescarta and has been fine", False),
        ("he had a fever last month after car t and now it is back, 103", True),
        ("dark urine and yellow eyes, got hemgenix last month", True),
    ],
)
def test_emergency_history_is_not_now_unless_told_as_now(
    assistant: Assistant, text: str, urgent: bool
) -> None:
    assert assistant.reply(text).urgent is urgent


@pytest.mark.parametrize("damaged", ["model.npz", "threshold.json"])
def test_emergency_model_survives_a_corrupt_entry(
    assistant: Assistant, empty_cache: Path, caplog: pytest.LogCaptureFixture, damaged: str
) -> None:
    screen = assistant.matcher.screen
    load_model(*screen._extra, screen._rules_catch)
    (entry,) = (empty_cache / "emergency").iterdir()
    (entry / damaged).write_bytes(b'{"threshold": ')
    with caplog.at_level(logging.WARNING, logger="knowledge.cache"):
        model = load_model(*screen._extra, screen._rules_catch)
    assert "emergency" in caplog.text
    assert model.threshold == screen.model.threshold
    assert model.held_out == screen.model.held_out
    assert np.array_equal(model.model.weights, screen.model.model.weights)
    assert (entry / damaged).stat().st_size > 20  # written again


def _all_texts() -> list[str]:
    from knowledge.resolver import normalize

    texts = [row["text"] for path in sorted(DATA.glob("*.jsonl")) for row in _rows(path.name)]
    return [" ".join(normalize(t).split()) for t in texts] + ["", "102.5"]


def test_emergency_model_reaches_decides_as_the_probability_does(assistant: Assistant) -> None:
    model = assistant.matcher.screen.model
    for text in _all_texts():
        probability = model.probability(text)
        # The thresholds in use, others, and the probability itself and its float neighbours.
        edges = [float(np.nextafter(probability, 1)), float(np.nextafter(probability, 0))]
        for threshold in (model.threshold, 0.05, 0.5, 0.9, probability, *edges):
            assert model.reaches(text, threshold) == (probability >= threshold), (text, threshold)


def test_emergency_model_rows_are_the_rows_of_the_features(assistant: Assistant) -> None:
    from intents.classifier import features

    for linear in (assistant.matcher.screen.model.model, assistant.matcher.model):
        for text in [*_all_texts(), "xproductx costs", "   "]:
            named = {linear.index.get(f) for f in features(text, linear.pieces)} - {None}
            assert linear.rows(text) == sorted(named), text
