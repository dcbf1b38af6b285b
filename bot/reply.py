"""The reply object: what every front end receives and the JSON contract's shape."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Reply", "SourceRef"]


class SourceRef(BaseModel):
    """One source of the facts an answer states: title, web address where there is one, date."""

    model_config = ConfigDict(extra="forbid")

    title: str
    url: str | None = None
    date: str


class Reply(BaseModel):
    """One answer to one message.

    ``model_dump()`` is exactly the reply object of the JSON contract.
    """

    model_config = ConfigDict(extra="forbid")

    intent: str
    confidence: float = Field(ge=0.0, le=1.0)
    products: list[str] = []
    conditions: list[str] = []
    topics: list[str] = []
    did_you_mean: list[str] = []
    urgent: bool = False
    text: str = Field(min_length=1)
    suggestions: list[str] = []
    #: The sources of the facts this answer states, most authoritative first.
    sources: list[SourceRef] = []
    #: The oldest ``last_reviewed`` among the facts used; None when the answer states no fact.
    reviewed: str | None = None
