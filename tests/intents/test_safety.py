"""Safety sets: every emergency is urgent, nothing else is, and the rest is answered as labelled."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bot import Assistant
from intents.safety import _alternatives, _any, _first_chars, _WordRules, tokens_of
from knowledge.loader import load_knowledge
from knowledge.resolver import normalize

DATA = Path(__file__).resolve().parents[1] / "data"


def _rows(name: str) -> list[dict]:
    return [
        json.loads(line) for line in (DATA / name).read_text(encoding="utf-8").splitlines() if line.strip()
    ]


# Every emergency set (``safety_emergency*.jsonl``: the team's own and the sets written blind by
# people who never saw the rules) must be caught whole; a recall figure would hide the one missed.
EMERGENCY_SETS = sorted(path.name for path in DATA.glob("safety_emergency*.jsonl"))
CALM_SETS = sorted(path.name for path in DATA.glob("safety_*.jsonl") if path.name not in EMERGENCY_SETS)


def test_safety_sets_are_found() -> None:
    assert "safety_emergency_fresh.jsonl" in EMERGENCY_SETS and "safety_questions_fresh.jsonl" in CALM_SETS


@pytest.mark.parametrize("name", EMERGENCY_SETS)
def test_safety_every_emergency_is_urgent(assistant: Assistant, name: str) -> None:
    rows = _rows(name)
    assert len(rows) >= 60
    assert all(row["urgent"] is True for row in rows if "urgent" in row)
    missed = [r["text"] for r in rows if not assistant.reply(r["text"]).urgent]
    assert missed == []


@pytest.mark.parametrize("name", CALM_SETS)
def test_safety_no_question_is_urgent(assistant: Assistant, name: str) -> None:
    rows = _rows(name)
    assert len(rows) >= 30
    false_urgent = [r["text"] for r in rows if assistant.reply(r["text"]).urgent]
    assert false_urgent == []


def test_safety_emergency_reply_sends_to_emergency_care_first(assistant: Assistant) -> None:
    reply = assistant.reply("my son has a 104 fever and is shaking after his car-t infusion")
    assert reply.urgent and reply.intent == "emergency"
    assert reply.text.startswith("This may be an emergency. Please call 911")
    assert "which treatment" in reply.text
    assert reply.suggestions == []


def test_safety_self_harm_points_to_988(assistant: Assistant) -> None:
    reply = assistant.reply("i dont want to live anymore")
    assert reply.urgent
    assert "988" in reply.text and "911" in reply.text


@pytest.mark.parametrize(
    ("name", "minimum"),
    [("safety_personal.jsonl", 40), ("safety_out_of_scope.jsonl", 100), ("safety_side_effects.jsonl", 60)],
)
def test_safety_sets_answered_as_labelled(assistant: Assistant, name: str, minimum: int) -> None:
    rows = _rows(name)
    assert len(rows) >= minimum
    wrong = []
    for row in rows:
        reply = assistant.reply(row["text"])
        if reply.urgent:
            wrong.append(row["text"])
        elif name == "safety_side_effects.jsonl":
            if row.get("products") and reply.products != row["products"]:
                wrong.append(row["text"])
        elif reply.intent != row["intent"] or (row["intent"] == "out_of_scope" and reply.products):
            wrong.append(row["text"])
    assert 1 - len(wrong) / len(rows) >= 0.97, wrong


def test_safety_personal_advice_never_gives_a_dose(assistant: Assistant) -> None:
    reply = assistant.reply("what dose of zolgensma for my 2 year old?")
    assert reply.intent == "personal_advice"
    assert "care team" in reply.text
    assert "Questions you could ask" in reply.text


def test_safety_personal_advice_shares_general_facts(assistant: Assistant) -> None:
    reply = assistant.reply("should my dad get Kymriah?")
    assert reply.intent == "personal_advice"
    assert reply.products == ["kymriah"]
    assert assistant.knowledge.product("kymriah").uses.text in reply.text


@pytest.mark.parametrize(
    "text",
    [
        "my husband had breyanzi last week and now he is mixing up his words and very shaky",
        "mom is trembling and her speech is garbled after car t",
        "dad cant get his words out since the infusion",
    ],
)
def test_safety_neurotoxicity_signs_told_as_now_are_urgent(assistant: Assistant, text: str) -> None:
    assert assistant.reply(text).urgent


@pytest.mark.parametrize("text", ["can breyanzi make you shaky?", "is trembling a side effect of car-t"])
def test_safety_questions_about_neurotoxicity_are_not_urgent(assistant: Assistant, text: str) -> None:
    assert not assistant.reply(text).urgent


def _long_stories(assistant: Assistant) -> list[dict]:
    """Every labelled message of the question sets long enough to be read as a story."""
    words = assistant.matcher.screen.tense.story_words
    names = ["dev.jsonl", "probe.jsonl", *sorted(p.name for p in DATA.glob("final_*.jsonl"))]
    return [row for name in names for row in _rows(name) if len(row["text"].split()) > words]


def test_safety_long_stories_are_urgent_only_when_labelled(assistant: Assistant) -> None:
    # Background (a diagnosis, a parent's confusion, what the last doctor did not know) is not
    # trouble now; the question at the end of the story is what gets answered.
    stories = _long_stories(assistant)
    assert len(stories) >= 20
    wrong = [
        r["text"]
        for r in stories
        if assistant.reply(r["text"]).urgent != (r.get("urgent") is True or r["intent"] == "emergency")
    ]
    assert wrong == []


@pytest.mark.parametrize("brand", sorted(p.brand for p in load_knowledge().listed_products()))
def test_safety_an_amount_for_one_person_is_declined(assistant: Assistant, brand: str) -> None:
    # Doses, cells or vials for someone named or weighed are that person's care team's to set.
    for question in (
        f"what dose of {brand} would a 9 kg baby get",
        f"how many vials of {brand} will my son need",
        f"how many cells will i get with {brand}",
    ):
        assert assistant.reply(question).intent == "personal_advice", question


@pytest.mark.parametrize(
    ("pattern", "first"),
    [
        ("fever", "f"),
        ("tremors?", "t"),
        ("trembl\\w*", "t"),
        ("(the )?shakes", "ts"),
        ("((tiny|red) )+(dots|spots)", "tr"),
        ("(?:ab|cd)*ef", "ace"),
        ("x{0,2}y", "xy"),
        ("a??b", "ab"),
        ("\\.x", "."),
        ("a|b", "ab"),
    ],
)
def test_safety_first_characters_of_a_sign(pattern: str, first: str) -> None:
    assert _first_chars(pattern) == frozenset(first)


@pytest.mark.parametrize("pattern", ["a?", "(a|)", "[ab]c", "(?P<x>a)", "\\w+", ".x", "a{x", "ab)", "\\n"])
def test_safety_first_characters_unsure(pattern: str) -> None:
    assert _first_chars(pattern) is None


def test_safety_signs_split_by_first_character_match_the_whole_alternation(assistant: Assistant) -> None:
    screen = assistant.matcher.screen
    assert screen._signs_by_first is not None
    texts = [row["text"] for path in sorted(DATA.glob("*.jsonl")) for row in _rows(path.name)]
    texts += [" ".join(texts[i : i + 3]) for i in range(0, len(texts), 7)]
    for text in texts:
        joined = " ".join(tokens_of(normalize(text)))
        assert screen._sign_starts(joined) == [m.start() for m in screen.signs.finditer(joined)], text


@pytest.mark.parametrize(
    ("pattern", "parts"),
    [
        ("a|b", ["a", "b"]),
        ("(a|b)c", ["(a|b)c"]),
        ("[|]x|y", ["[|]x", "y"]),
        ("\\\\|z", ["\\\\", "z"]),
        ("[^]|]a|b", ["[^]|]a", "b"]),
        ("a)", None),
        ("(a", None),
        ("[ab", None),
        ("a\\", None),
    ],
)
def test_safety_top_level_alternatives(pattern: str, parts: list[str] | None) -> None:
    assert _alternatives(pattern) == parts


def test_safety_rules_that_begin_at_a_word_match_as_written() -> None:
    patterns = ["\\bkill(ing)? me\\b", "\\b(no|dont see) point\\b|\\bwhats the point"]
    joined = re.compile("|".join(f"(?:{p})" for p in patterns))
    assert _any(patterns).pattern.startswith("\\b(?:")
    for text in ["killing me softly", "i dont see point", "whats the point", "skill me", "nopoint"]:
        assert [m.span() for m in _any(patterns).finditer(text)] == [m.span() for m in joined.finditer(text)]
    assert not _any(["\\ba", "b"]).pattern.startswith("\\b(?:")


def test_safety_first_characters_skip_a_lookaround() -> None:
    assert _first_chars("(?=ab)a") == frozenset("a")
    assert _first_chars("(?<!x)(?!no)y") == frozenset("y")


def test_safety_word_rules_find_what_the_whole_alternation_finds(assistant: Assistant) -> None:
    patterns = ["\\b(im|i am) (so )?done(?=\\s*($|[.!]))", "\\bkill(ing)? me\\b|\\bwhats the point"]
    rules = _WordRules(patterns)
    whole = re.compile("|".join(f"(?:{p})" for p in patterns))
    assert rules._openings is not None
    texts = [row["text"] for path in sorted(DATA.glob("*.jsonl")) for row in _rows(path.name)]
    texts += ["im so done", "i am done.", "im done with it", "stop killing me", "skill me", "whats the point"]
    for text in texts:
        expected, found = whole.search(text), rules.search(text)
        assert (found and found.span()) == (expected and expected.span()), text
    assert _WordRules(["\\ba(b)\\1"])._openings is None


PRODUCTS = sorted(p.id for p in load_knowledge().listed_products())


@pytest.mark.parametrize("product_id", PRODUCTS)
def test_safety_emergency_answer_names_the_treatment_for_the_emergency_team(
    assistant: Assistant, product_id: str
) -> None:
    brand = load_knowledge().products[product_id].brand
    reply = assistant.reply(f"my dad got {brand} last week and now he has a 104 fever and is shaking")
    assert reply.urgent and f"about the {brand} treatment" in reply.text, reply.text
    # Told in a conversation about it, "it" is that treatment.
    session = f"urgent:{product_id}"
    assistant.reply(f"what is {brand}?", session=session)
    follow = assistant.reply("he has a 103 fever now and shivering, got it 4 days ago", session=session)
    assert follow.urgent and f"about the {brand} treatment" in follow.text, follow.text
