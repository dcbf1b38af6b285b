"""Regenerate intents/data/prebuilt.json: the training results a fresh install starts from.

Masking the catalog's examples and the two held-out fits took most of a first start; their
results depend only on this repository's data, so they ship (see ``intents.prebuilt``). Run
after editing the intent catalog, the knowledge names or the safety data:
python scripts/make_prebuilt.py (``tests/intents/test_prebuilt.py`` says when it is due).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot import Assistant
from intents import prebuilt

assistant = Assistant()
prebuilt.write(prebuilt.generate(assistant.matcher, assistant.resolver))
print(f"written {prebuilt.PATH}")
