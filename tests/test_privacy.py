"""Nothing a person wrote reaches the logs, even at DEBUG."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from bot import Assistant

DATA = Path(__file__).resolve().parent / "data"


def test_privacy_no_message_text_in_debug_logs(
    assistant: Assistant, caplog: pytest.LogCaptureFixture
) -> None:
    texts = []
    for name in ("safety_emergency.jsonl", "safety_personal.jsonl", "safety_side_effects.jsonl"):
        texts += [json.loads(line)["text"] for line in (DATA / name).read_text().splitlines() if line.strip()]
    with caplog.at_level(logging.DEBUG):
        for i, text in enumerate(texts):
            assistant.reply(text, session=f"privacy-{i}")
    logged = "\n".join(record.getMessage() for record in caplog.records)
    leaked = [t for t in texts if len(t) > 12 and t.lower() in logged.lower()]
    assert leaked == []
    assert "privacy-" not in logged


def test_privacy_repl_keeps_history_in_memory_only() -> None:
    source = (Path(__file__).resolve().parents[1] / "bot" / "repl.py").read_text()
    assert "InMemoryHistory" in source and "FileHistory" not in source
