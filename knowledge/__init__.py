"""What is true: the schema, the curated data files, loading and name resolution."""

from knowledge.errors import CgtBotError, DataError
from knowledge.loader import DATA_DIR, FACT_FIELDS, KnowledgeBase, Problem, collect, load_knowledge
from knowledge.resolver import Mention, Resolution, Resolver, normalize
from knowledge.schema import Comparison, Condition, ConditionGroup, Fact, NotCovered, Product, Source, Topic

__all__ = [
    "DATA_DIR",
    "FACT_FIELDS",
    "CgtBotError",
    "Comparison",
    "Condition",
    "ConditionGroup",
    "DataError",
    "Fact",
    "KnowledgeBase",
    "Mention",
    "NotCovered",
    "Problem",
    "Product",
    "Resolution",
    "Resolver",
    "Source",
    "Topic",
    "collect",
    "load_knowledge",
    "normalize",
]
