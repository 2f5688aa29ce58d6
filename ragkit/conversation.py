"""Multi-turn chat over an index: history is kept and each turn retrieves again."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .answering import Answer
from .queries import AskOptions

if TYPE_CHECKING:
    from .index import Index

__all__ = ["Conversation"]


class Conversation:
    """A chat session; follow-up questions are searched together with the previous one."""

    #: Messages of history sent to the model (older turns fall out of the window, and
    #: :meth:`Index.ask_stream` leaves out the oldest of these first when the prompt
    #: would not fit ``num_ctx``; ``last.note`` then says so).
    HISTORY = 6

    #: Models that are sent no earlier turns: smollm2:135m, shown its previous answer,
    #: repeats it (word for word under greedy decoding) instead of answering the follow-up.
    #: On 5 follow-ups over the guide corpus, the second answer shared 0.48 of the first's
    #: text with history and 0.26 without.  Their follow-ups still get the previous
    #: question's topic through the search query (:meth:`search_query`).
    NO_HISTORY_MODELS = frozenset({"smollm2:135m"})

    def __init__(self, index: Index, ask: AskOptions | None = None, **changes: Any) -> None:
        """A session over ``index``; ``ask`` (and field ``changes``) say how each turn answers."""
        self.index = index
        # A conversation is chat-shaped: history goes in as messages.
        self.ask = (ask or AskOptions()).with_(**changes).with_(mode="chat")
        self.history: list[dict[str, Any]] = []
        self.last: Answer | None = None

    def search_query(self, question: str) -> str:
        """The retrieval query for a turn: the previous question gives a follow-up its topic.

        >>> c = Conversation(None)  # type: ignore[arg-type]
        >>> c.history = [{"role": "user", "content": "How do I rebuild an index?"},
        ...              {"role": "assistant", "content": "Use --rebuild [1]."}]
        >>> c.search_query("and how long does it take?")
        'How do I rebuild an index?\\nand how long does it take?'
        """
        previous = [m["content"] for m in self.history if m["role"] == "user"][-1:]
        return "\n".join([*previous, question])

    def model_history(self) -> list[dict[str, Any]]:
        """The earlier messages the model is sent with the next question."""
        model = self.ask.model or self.index.chat_model
        return [] if model in self.NO_HISTORY_MODELS else self.history[-self.HISTORY :]

    def ask_stream(self, question: str) -> Iterator[str]:
        """Stream the answer to the next question; afterwards :attr:`last` holds it."""
        stream = self.index.ask_stream(question, self.ask, history=self.model_history(),
                                       search_query=self.search_query(question))
        yield from stream
        self.last = stream.answer
        self.history += [
            {"role": "user", "content": question},
            {"role": "assistant", "content": self.last.text},
        ]
