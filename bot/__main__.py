"""``python -m bot`` does what the ``cgt-bot`` command does."""

from bot.cli import main

raise SystemExit(main())
