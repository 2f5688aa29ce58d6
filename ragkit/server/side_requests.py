"""Recognizing the requests chat front-ends send on their own, so they skip retrieval.

Besides the user's questions, front-ends such as Open WebUI, LibreChat or
LobeChat ask the same model for chores: a title for the chat, tags, follow-up
suggestions, web-search queries, autocompletion.  Retrieving for those would
cost a search and put passages where the front-end expects a short title, so
ragkit sends them to the chat model as they are.

A request is a side request when:

* it carries the header ``X-Ragkit-Retrieval: off`` (any client can opt out), or
* its last user message (or prompt) looks like such a chore: it starts with a
  task heading (``### Task:``), wraps the chat in ``<chat_history>`` tags, or
  asks for a title, tags or follow-up questions of "the conversation"/"the chat".

The header ``X-Ragkit-Retrieval: on`` forces retrieval for a request that
would match by mistake.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = ["HEADER", "is_side_request"]

HEADER = "x-ragkit-retrieval"

_CHORES = [
    re.compile(r"^\s*#{2,4}\s*task\s*:", re.IGNORECASE),
    re.compile(r"<chat_history>", re.IGNORECASE),
    re.compile(r"\b(title|tags?|follow[- ]up questions|search quer(y|ies))\b[^.\n]{0,80}"
               r"\b(for|of|from|summari[sz]ing|categori[sz]ing|based on)\s+(the|this)\s+"
               r"(conversation|chat|chat history|dialogue)\b", re.IGNORECASE),
]


def is_side_request(text: str, headers: Mapping[str, str]) -> bool:
    """Whether a request (its last user message, or prompt) is a front-end's chore.

    >>> is_side_request("### Task:\\nGenerate a concise title for the chat.", {})
    True
    >>> is_side_request("Write a 5-word title for the conversation above.", {})
    True
    >>> is_side_request("What is the title of chapter 3?", {})
    False
    >>> is_side_request("Anything", {"x-ragkit-retrieval": "off"})
    True
    """
    choice = (headers.get(HEADER) or "").strip().lower()
    if choice in ("off", "0", "false", "no"):
        return True
    if choice in ("on", "1", "true", "yes"):
        return False
    return any(pattern.search(text) for pattern in _CHORES)
