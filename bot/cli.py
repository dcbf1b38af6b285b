"""The ``cgt-bot`` command: chat, ask, check, eval and telegram.

Every expected error is one sentence on standard error and an exit code from the
contract (2 for usage and bad input, 1 for anything else); never a traceback.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, TextIO

from bot.errors import CgtBotError, UsageError

if TYPE_CHECKING:
    from bot.assistant import Assistant

__all__ = ["build_parser", "main"]

log = logging.getLogger(__name__)


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


def build_parser() -> argparse.ArgumentParser:
    """The command line of the contract."""
    parser = _Parser(
        prog="cgt-bot",
        description="Plain-language answers about FDA-approved cell and gene therapies.",
    )
    parser.add_argument(
        "--log-level",
        default="WARNING",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="how much to log on standard error (message texts are never logged)",
    )
    commands = parser.add_subparsers(dest="command", parser_class=_Parser)
    commands.add_parser("chat", help="chat in the terminal (the default)")
    ask = commands.add_parser("ask", help="answer one question, or JSON lines from standard input")
    ask.add_argument("question", nargs="?", help="the question to answer")
    ask.add_argument("--json", action="store_true", help="print the reply object as JSON")
    ask.add_argument("--jsonl", action="store_true", help="read JSON lines from standard input")
    commands.add_parser("check", help="validate the knowledge base and the intent catalog")
    evaluate = commands.add_parser("eval", help="evaluation report on a labelled JSONL file")
    evaluate.add_argument("file", type=Path, help="JSON lines with text, intent, products, session")
    evaluate.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    telegram = commands.add_parser("telegram", help="run the Telegram bot (long polling)")
    telegram.add_argument("--api-url", help="Bot API server root (default: $TELEGRAM_API_URL or Telegram's)")
    telegram.add_argument(
        "--persist", type=Path, help="save per-chat button state to this JSON file (off by default)"
    )
    telegram.add_argument("--webhook-url", help="webhook mode: the public URL Telegram posts updates to")
    telegram.add_argument("--listen", help="webhook mode: HOST:PORT to serve updates on")
    telegram.add_argument("--redis", help="shared state in Redis: redis://HOST:PORT/DB ($CGT_BOT_REDIS_URL)")
    return parser


def _configure_logging(level: str) -> None:
    try:
        from bot.logging_setup import configure_logging
    except ImportError:  # pragma: no cover - the Telegram front end brings the scrubbing formatter
        logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
        return
    configure_logging(level)


def _assistant() -> Assistant:
    from bot.terminal import Progress
    from bot.texts import terminal_texts

    texts = terminal_texts()
    # A spinner on a terminal while the assistant loads (over a second); one line otherwise,
    # and only when the classifier must first be trained.
    with Progress(sys.stderr, texts.starting) as progress:
        from bot.assistant import Assistant

        return Assistant(on_training=lambda: progress.update(texts.first_start))


def _ask(args: argparse.Namespace, stdin: TextIO, stdout: TextIO, stderr: TextIO) -> int:
    if args.jsonl:
        if args.question is not None:
            raise UsageError("give either a question or --jsonl, not both")
        return _ask_jsonl(stdin, stdout, stderr)
    if args.question is None:
        raise UsageError('ask needs a question, e.g. cgt-bot ask "what is gene therapy?"')
    reply = _assistant().reply(args.question)
    if args.json:
        stdout.write(json.dumps(reply.model_dump(), ensure_ascii=False) + "\n")
    else:
        stdout.write(reply.text + "\n")
    return 0


def _lines(stdin: TextIO) -> Iterator[str | None]:
    """The lines of standard input as text; None for a line that is not UTF-8."""
    binary = getattr(stdin, "buffer", None)
    if binary is None:  # already text (a StringIO in tests)
        yield from stdin
        return
    for raw in binary:
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError:
            yield None


def _ask_jsonl(stdin: TextIO, stdout: TextIO, stderr: TextIO) -> int:
    """One output line per input line, in order; exit 2 if any line could not be read."""
    assistant = _assistant()
    bad = total = 0
    for number, line in enumerate(_lines(stdin), start=1):
        total = number
        out: dict[str, object] = {}
        if line is None:
            out = {"error": f"line {number} is not UTF-8 text"}
        else:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                out = {"error": f"line {number} is not valid JSON"}
            else:
                if not isinstance(row, dict) or not isinstance(row.get("text"), str):
                    out = {"error": f"line {number} needs a string 'text'"}
                else:
                    session = row.get("session")
                    session = str(session) if session is not None else None
                    out = assistant.reply(row["text"], session=session).model_dump()
        bad += "error" in out
        stdout.write(json.dumps(out, ensure_ascii=False) + "\n")
        stdout.flush()
    if bad:
        stderr.write(f"cgt-bot: {bad} of {total} lines could not be read; their output lines say why\n")
        return 2
    return 0


def _check(stdout: TextIO, stderr: TextIO) -> int:
    from bot.checks import run_checks

    result = run_checks()
    for line in result.summary:
        stdout.write(line + "\n")
    for warning in result.warnings:
        stdout.write(f"warning: {warning}\n")
    for error in result.errors:
        stderr.write(f"error: {error}\n")
    if not result.ok:
        stderr.write(f"{len(result.errors)} problems found\n")
        return 1
    stdout.write("all checks passed\n")
    return 0


def _check_readable(path: Path) -> None:
    """A UsageError in plain words when ``path`` cannot be read as a text file."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise UsageError(f"{path} is a folder, not a file") from None
    except PermissionError:
        raise UsageError(f"no permission to read {path}") from None
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror or 'read error'}") from None
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not UTF-8 text") from None


def _eval(args: argparse.Namespace, stdout: TextIO) -> int:
    from bot.evaluate import evaluate, read_cases

    _check_readable(args.file)
    cases = read_cases(args.file)
    report = evaluate(_assistant(), cases)
    if args.json:
        stdout.write(json.dumps(report.as_dict(), ensure_ascii=False) + "\n")
    else:
        stdout.write(report.as_text() + "\n")
    return 0


def _telegram(args: argparse.Namespace) -> int:
    from bot.telegram import run

    kwargs = {"persistence_path": args.persist} if args.persist else {}
    return run(
        None, args.api_url, **kwargs, webhook_url=args.webhook_url, listen=args.listen, redis_url=args.redis
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    try:
        return _main(argv)
    finally:
        # Everything built lives until the process ends; freezing it spares the interpreter a
        # last full garbage collection of spaCy's objects on the way out (about 0.4 s).
        gc.freeze()


def _main(argv: Sequence[str] | None) -> int:
    stdout, stderr = sys.stdout, sys.stderr
    try:
        args = build_parser().parse_args(argv)
        _configure_logging(args.log_level)
        command = args.command or "chat"
        if command == "chat":
            from bot.repl import run_repl

            return run_repl(_assistant(), sys.stdin, stdout)
        if command == "ask":
            return _ask(args, sys.stdin, stdout, stderr)
        if command == "check":
            return _check(stdout, stderr)
        if command == "eval":
            return _eval(args, stdout)
        if command == "telegram":
            return _telegram(args)
        raise UsageError(f"unknown command '{command}'")
    except CgtBotError as error:
        stderr.write(f"cgt-bot: {error}\n")
        return error.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except Exception as error:  # the last guard: one line, never a traceback
        log.debug("unexpected error", exc_info=True)
        stderr.write(f"cgt-bot: unexpected error ({error.__class__.__name__}); run with --log-level DEBUG\n")
        return 1
