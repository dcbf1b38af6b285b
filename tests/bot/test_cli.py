"""The command line: exit codes, stdout and stderr as the contract says."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from bot import Assistant, checks
from bot.checks import DataRoots
from bot.cli import main

DEV = Path(__file__).resolve().parents[1] / "data" / "dev.jsonl"


def test_cli_ask_prints_plain_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ask", "how much is zolgensma?"]) == 0
    out = capsys.readouterr().out
    assert "Zolgensma" in out and "{" not in out


def test_cli_ask_json_prints_the_reply_object(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ask", "--json", "zolgenzma price"]) == 0
    reply = json.loads(capsys.readouterr().out)
    assert reply["intent"] == "product_cost"
    assert reply["products"] == ["zolgensma"]


def test_cli_ask_jsonl_answers_every_line_in_order(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = [
        '{"text": "tell me about zolgensma", "session": "a"}',
        '{"text": "how much does it cost?", "session": "a"}',
        '{"text": "how much does it cost?"}',
    ]
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n".join(lines) + "\n"))
    assert main(["ask", "--jsonl"]) == 0
    captured = capsys.readouterr()
    out = [json.loads(line) for line in captured.out.splitlines()]
    assert len(out) == len(lines)
    assert out[0]["products"] == ["zolgensma"]
    assert out[1]["intent"] == "product_cost" and out[1]["products"] == ["zolgensma"]
    assert out[2]["products"] == []
    assert captured.err == ""


def test_cli_ask_jsonl_bad_lines_keep_their_place_and_exit_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = [
        '{"text": "tell me about zolgensma", "session": "a"}',
        "this is not json",
        '{"session": "a"}',
        '{"text": "how much does it cost?", "session": "a"}',
        '["a list"]',
        "",
    ]
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n".join(lines) + "\n"))
    assert main(["ask", "--jsonl"]) == 2
    captured = capsys.readouterr()
    out = [json.loads(line) for line in captured.out.splitlines()]
    assert len(out) == len(lines)
    assert out[0]["products"] == ["zolgensma"]
    assert out[1] == {"error": "line 2 is not valid JSON"}
    assert out[2] == {"error": "line 3 needs a string 'text'"}
    assert out[3]["intent"] == "product_cost" and out[3]["products"] == ["zolgensma"]
    assert out[4] == {"error": "line 5 needs a string 'text'"}
    assert out[5] == {"error": "line 6 is not valid JSON"}
    assert captured.err == "cgt-bot: 4 of 6 lines could not be read; their output lines say why\n"


def test_cli_ask_jsonl_line_that_is_not_utf8_gets_an_error_line(assistant: Assistant) -> None:
    """Real bytes on a real standard input: the bad line gets its error, the others answers."""
    data = b'{"text": "hello"}\n{"text": "caf\xe9"}\n{"text": "thanks"}\n'
    result = subprocess.run(
        [sys.executable, "-m", "bot", "ask", "--jsonl"], input=data, capture_output=True, timeout=120
    )
    assert result.returncode == 2
    out = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert [o.get("intent") for o in out] == ["greeting", None, "thanks"]
    assert out[1] == {"error": "line 2 is not UTF-8 text"}
    assert result.stderr.decode().count("\n") == 1 and b"Traceback" not in result.stderr


def test_cli_usage_error_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["frobnicate"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("cgt-bot:")
    assert "Traceback" not in err


def test_cli_ask_without_question_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ask"]) == 2
    assert capsys.readouterr().err.startswith("cgt-bot: ask needs a question")


def test_cli_eval_missing_file_says_so_in_words(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = tmp_path / "missing.jsonl"
    assert main(["eval", str(missing)]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"cgt-bot: no such file: {missing}\n"
    assert captured.out == ""


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.mkdir(), "{p} is a folder, not a file"),
        (lambda p: p.write_bytes(b'{"text": "caf\xe9", "intent": "greeting"}\n'), "{p} is not UTF-8 text"),
    ],
)
def test_cli_eval_unreadable_file_in_words(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, make: Callable[[Path], object], message: str
) -> None:
    path = tmp_path / "cases.jsonl"
    make(path)
    assert main(["eval", str(path)]) == 2
    assert capsys.readouterr().err == f"cgt-bot: {message.format(p=path)}\n"


def test_cli_eval_bad_line_names_the_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "hi", "intent": "greeting"}\n{broken\n')
    assert main(["eval", str(path)]) == 2
    assert "line 2 is not valid JSON" in capsys.readouterr().err


def test_cli_eval_report_and_json(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "small.jsonl"
    rows = [
        {"text": "hello", "intent": "greeting"},
        {"text": "how much is zolgensma", "intent": "product_cost", "products": ["zolgensma"]},
        {"text": "what's the weather", "intent": "out_of_scope"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert main(["eval", str(path)]) == 0
    text = capsys.readouterr().out
    assert "intent accuracy" in text and "precision" in text
    assert main(["eval", "--json", str(path)]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["total"] == 3 and figures["intent_accuracy"] == 1.0
    assert set(figures["per_intent"]["greeting"]) == {"precision", "recall", "f1", "support"}


def test_cli_check_passes_and_counts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    assert "cell-based gene therapy:" in out and "all checks passed" in out


def test_cli_check_finds_a_broken_telegram_file(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, data_roots: DataRoots
) -> None:
    path = data_roots.front_ends / "telegram.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("slow_down:", "slow_dawn:", 1), encoding="utf-8")
    monkeypatch.setattr(checks, "DEFAULT_ROOTS", data_roots)
    assert main(["check"]) == 1
    err = capsys.readouterr().err
    assert err == (
        "error: telegram.yaml: slow_dawn: Extra inputs are not permitted; did you mean 'slow_down'?\n"
        "1 problems found\n"
    )


def test_cli_chat_with_piped_input_prints_answers_only(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("what is zolgensma\n/quit\nnever asked\n"))
    assert main(["chat"]) == 0
    out = capsys.readouterr().out
    assert "you>" not in out and "Type /help" not in out
    assert "Zolgensma" in out
    assert "You could also ask" not in out and "1. " not in out
    assert "never asked" not in out


def test_cli_module_entry_point_runs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot", "ask", "--json", "what is kymriah"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["products"] == ["kymriah"]
    assert result.stderr == ""


def test_cli_bad_knowledge_file_is_one_line_exit_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bot import cli

    def broken() -> None:
        from knowledge.errors import DataError

        raise DataError(["knowledge/data/products/x.yaml: kind: Input should be 'cell therapy'"])

    monkeypatch.setattr(cli, "_assistant", broken)
    result = main(["ask", "hi"])
    assert result == 1
