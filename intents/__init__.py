"""What people ask and how the bot answers: the intent catalog and the matcher."""

from intents.catalog import Catalog, IntentSpec, load_catalog
from intents.matcher import IntentMatcher, Prediction

__all__ = ["Catalog", "IntentMatcher", "IntentSpec", "Prediction", "load_catalog"]
