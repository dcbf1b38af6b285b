"""Regenerate knowledge/data/common_words.txt from spacy-lookups-data's English word frequencies.

The resolver never fuzzy-matches a common English word onto a product name ("revenge" is
not "Provenge"). Loading the full frequency table takes seconds, so the common part is
kept as a small text file. The package is no dependency of cgt-bot; for this script only:
pip install spacy-lookups-data && python scripts/make_common_words.py
"""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import spacy_lookups_data

THRESHOLD = -14.0  # log probability; about the 19,000 most frequent lowercase words

source = Path(spacy_lookups_data.__file__).parent / "data" / "en_lexeme_prob.json.gz"
with gzip.open(source, "rt", encoding="utf-8") as handle:
    probs = json.load(handle)
words = sorted(w for w, p in probs.items() if p > THRESHOLD and re.fullmatch(r"[a-z]+", w))
target = Path(__file__).resolve().parent.parent / "knowledge" / "data" / "common_words.txt"
target.write_text("\n".join(words) + "\n", encoding="utf-8")
print(f"{len(words)} words written to {target}")
