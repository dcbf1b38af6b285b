"""Starting and stopping the bot: `cgt-bot telegram`, its token and API URL, its exit codes."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from bot import Assistant
from bot.cli import main
from bot.telegram import run
from tests.auxil.fake_bot_api import BOT_USER, TOKEN, FakeBotAPI
from tests.bot.telegram.webhook_workers import command as entry_point
from tests.bot.telegram.webhook_workers import subprocess_env

ROOT = Path(__file__).resolve().parents[3]
SECRET = TOKEN.split(":")[1]
OTHER_TOKEN = "7000000002:AAHanotherTokenNobodyAccepts_987654321"


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


def test_telegram_run_without_token_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(None, None) == 2
    assert "TELEGRAM_BOT_TOKEN" in one_line(capsys.readouterr().err)


def test_telegram_cli_without_token_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["telegram"]) == 2
    assert one_line(capsys.readouterr().err).startswith("cgt-bot: No Telegram bot token")


def test_telegram_run_rejected_token_exits_1(
    fake_api: FakeBotAPI, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(OTHER_TOKEN, fake_api.url) == 1
    error = one_line(capsys.readouterr().err)
    assert "rejected the bot token" in error
    assert OTHER_TOKEN.split(":")[1] not in error and "7000000002" not in error
    assert [(call.method, call.status) for call in fake_api.calls()] == [("getMe", 401)]


def test_telegram_run_reads_token_and_api_url_from_environment(
    fake_api: FakeBotAPI, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", OTHER_TOKEN)
    monkeypatch.setenv("TELEGRAM_API_URL", fake_api.url + "/")
    assert run(None, None) == 1
    assert fake_api.calls("getMe", ok=False)
    assert OTHER_TOKEN.split(":")[1] not in capsys.readouterr().err


@pytest.mark.parametrize(
    ("api_url", "code"), [("ftp://127.0.0.1:1", 2), ("not a url", 2), ("http://127.0.0.1:9", 1)]
)
def test_telegram_run_bad_or_unreachable_api_url(
    api_url: str, code: int, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(TOKEN, api_url) == code
    error = one_line(capsys.readouterr().err)
    assert SECRET not in error
    assert ("web address" in error) if code == 2 else ("Could not reach" in error)


@pytest.mark.parametrize(("stop", "url_from"), [(signal.SIGTERM, "flag"), (signal.SIGINT, "environment")])
def test_telegram_entry_point_answers_then_stops_cleanly(
    fake_api: FakeBotAPI,
    new_chat: Callable[[], int],
    assistant: Assistant,  # built first, so the subprocess finds the trained classifier cached
    stop: signal.Signals,
    url_from: str,
) -> None:
    env = subprocess_env(TELEGRAM_BOT_TOKEN=TOKEN)
    command = [*entry_point(), "--log-level", "DEBUG", "telegram"]
    if url_from == "flag":
        command += ["--api-url", fake_api.url]
    else:
        env["TELEGRAM_API_URL"] = fake_api.url
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        fake_api.wait_call("getUpdates", timeout=60)
        chat = new_chat()
        fake_api.send(chat, "what is zolgensma?")
        (answer,) = fake_api.wait_messages(chat, 1, timeout=30)
        process.send_signal(stop)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()

    assert process.returncode == 0, err
    assert "<b>Zolgensma</b>" in answer.text
    assert f"@{BOT_USER['username']}" in err
    assert SECRET not in out + err
    assert "what is zolgensma" not in (out + err).lower() and str(chat) not in out + err
    assert fake_api.calls("getUpdates")[-1].params.get("timeout") == 0  # the clean stop confirmed the offset


def test_telegram_repeated_409_stops_with_one_line_and_exit_1(
    fake_api: FakeBotAPI,
    assistant: Assistant,  # built first, so the subprocess finds the trained classifier cached
) -> None:
    """Issue #10, 5: another poller on the token: one clear line and exit 1, not 409s forever."""
    fake_api.fail("getUpdates", 409, times=1000)
    env = subprocess_env(TELEGRAM_BOT_TOKEN=TOKEN)
    process = subprocess.run(
        [*entry_point(), "telegram", "--api-url", fake_api.url],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert process.returncode == 1, process.stderr
    mine = [line for line in process.stderr.splitlines() if line.startswith("cgt-bot:")]
    assert len(mine) == 1 and "another process is polling with this token" in mine[0]
    assert SECRET not in process.stderr


@pytest.mark.parametrize(
    ("options", "phrase"),
    [
        (
            {"webhook_url": "https://bot.example.org/tg", "listen": "127.0.0.1:8443"},
            "TELEGRAM_WEBHOOK_SECRET",
        ),
        ({"webhook_url": "https://bot.example.org/tg"}, "both --webhook-url"),
        ({"redis_url": "http://127.0.0.1:6379"}, "redis://HOST:PORT/DB"),
    ],
)
def test_telegram_webhook_and_redis_usage_errors_exit_2(
    fake_api: FakeBotAPI, capsys: pytest.CaptureFixture[str], options: dict[str, str], phrase: str
) -> None:
    assert run(TOKEN, fake_api.url, **options) == 2
    assert phrase in one_line(capsys.readouterr().err)
    assert fake_api.calls() == []  # refused before anything was asked of the server


def test_telegram_unreachable_redis_exits_1_without_its_password(
    fake_api: FakeBotAPI, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(TOKEN, fake_api.url, redis_url="redis://user:hunter2secret@127.0.0.1:9/0") == 1
    error = one_line(capsys.readouterr().err)
    assert "Could not reach Redis at redis://127.0.0.1:9/0" in error and "hunter2secret" not in error


def test_telegram_webhook_refused_by_telegram_exits_1_with_its_reason(
    fake_api: FakeBotAPI,
    assistant: Assistant,  # built first, so the classifier is cached
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tests.bot.telegram.webhook_workers import SECRET as WEBHOOK_SECRET

    monkeypatch.setenv("TELEGRAM_WEBHOOK_SECRET", WEBHOOK_SECRET)
    fake_api.fail("setWebhook", 400, description="Bad Request: bad webhook: HTTPS url must be provided")
    listen = "127.0.0.1:0"  # the system's pick: a port chosen in advance may be taken meanwhile
    assert run(TOKEN, fake_api.url, webhook_url="http://bot.example.org/tg", listen=listen) == 1
    error = one_line(capsys.readouterr().err)
    assert "did not take the webhook" in error and "https url must be provided" in error.lower()
    assert SECRET not in error and WEBHOOK_SECRET not in error
