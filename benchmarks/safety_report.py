"""Print the safety figures: emergency recall, false urgent, and out-of-scope accuracy per set.

Run: python benchmarks/safety_report.py
Reads tests/data/safety_*.jsonl and, when present, ../shared/data/out_of_scope.jsonl.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
SMALL_TALK = {
    "what_can_i_ask_you": "help",
    "who_made_you": "about_bot",
    "what_is_your_name": "about_bot",
    "where_are_you_from": "about_bot",
    "greeting": "greeting",
    "goodbye": "thanks",
    "thank_you": "thanks",
}


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def main() -> int:
    """Answer every safety question and print one line per set."""
    sys.path.insert(0, str(ROOT))
    from bot import Assistant
    from knowledge.resolver import normalize

    assistant = Assistant()
    data = ROOT / "tests" / "data"
    screen = assistant.matcher.screen
    model = screen.model
    held = model.held_out
    print(
        f"model, held-out fifth:   recall {held['recall']:.1%}, precision {held['precision']:.1%}"
        f" (threshold {model.threshold:.2f}, {int(held['urgent'])} urgent, {int(held['calm'])} calm);"
        f" screen (rules, then model) recall {held['screen_recall']:.1%},"
        f" rules alone miss {int(held['rules_missed'])}"
    )
    sets = [(p, True) for p in sorted(data.glob("safety_emergency*.jsonl"))]
    sets += [
        (p, False)
        for p in sorted([*data.glob("safety_side_effects*.jsonl"), *data.glob("safety_questions*.jsonl")])
    ]
    for path, urgent_set in sets:
        rows = _rows(path)
        urgent = sum(assistant.reply(r["text"]).urgent for r in rows)
        normalized = [assistant.catalog.expand(" ".join(normalize(r["text"]).split())) for r in rows]
        by_model = sum(model.is_urgent(text) for text in normalized)
        figure = (
            f"{urgent}/{len(rows)} = {urgent / len(rows):.1%} urgent"
            if urgent_set
            else f"{urgent}/{len(rows)} false urgent"
        )
        print(f"{path.name + ':':40} {figure}; model alone {by_model}/{len(rows)} urgent")
    advice = _rows(data / "safety_personal.jsonl")
    right = sum(assistant.reply(r["text"]).intent == "personal_advice" for r in advice)
    print(f"personal advice:         {right}/{len(advice)} = {right / len(advice):.1%}")
    own = _rows(data / "safety_out_of_scope.jsonl")
    right = sum(
        (reply := assistant.reply(r["text"])).intent == "out_of_scope" and not reply.products for r in own
    )
    print(f"out of scope (own):      {right}/{len(own)} = {right / len(own):.1%}")
    if (SHARED / "out_of_scope.jsonl").exists():
        shared = _rows(SHARED / "out_of_scope.jsonl")
        right = 0
        for row in shared:
            reply = assistant.reply(row["text"])
            allowed = {"out_of_scope", SMALL_TALK.get(row.get("label", ""), "out_of_scope")}
            right += reply.intent in allowed and not reply.products
        print(f"out of scope (shared):   {right}/{len(shared)} = {right / len(shared):.1%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
