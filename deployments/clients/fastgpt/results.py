"""What FastGPT's answers mean, as typed results read from its JSON."""

from dataclasses import dataclass, field
from typing import Any

SEARCH_NODE_TYPE = "datasetSearchNode"


@dataclass(frozen=True)
class CreateResult:
    """A new collection (document) and what happened to its chunks.

    `over_token` chunks were longer than the embedding model takes and will never be trained;
    `repeated` ones duplicated another chunk; `errors` ones were empty (K7).
    """

    collection_id: str
    inserted: int
    over_token: int
    repeated: int
    errors: int
    over_token_chunks: tuple[dict[str, Any], ...] = ()
    repeated_chunks: tuple[dict[str, Any], ...] = ()
    error_chunks: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class Collection:
    """A document of a knowledge base, with its training counters (collection/list)."""

    id: str
    name: str
    type: str
    data_amount: int
    training_amount: int
    raw: dict[str, Any] = field(repr=False)

    @property
    def trained(self) -> bool:
        """Every chunk left the training queue and at least one was stored."""
        return self.training_amount == 0 and self.data_amount > 0


@dataclass(frozen=True)
class SearchHit:
    """One chunk found by a search, with its scores by kind (embedding, fullText, reRank, rrf)."""

    id: str
    collection_id: str
    source_name: str
    q: str
    a: str
    scores: dict[str, float]
    dataset_id: str = ""


@dataclass(frozen=True)
class ChatAnswer:
    """An app's answer and the chunks its knowledge base search quoted."""

    text: str
    quotes: list[SearchHit]


def _items(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def create_result(data: Any) -> CreateResult:
    """From `{collectionId, results: {insertLen, overToken[], repeat[], error[]}}`; a link
    collection answers `insertLen` alone."""
    data = data if isinstance(data, dict) else {}
    results = data.get("results") if isinstance(data.get("results"), dict) else {}
    over_token = tuple(_items(results.get("overToken")))
    repeated = tuple(_items(results.get("repeat")))
    errors = tuple(_items(results.get("error")))
    return CreateResult(
        collection_id=str(data.get("collectionId") or ""),
        inserted=int(results.get("insertLen") or 0),
        over_token=len(over_token),
        repeated=len(repeated),
        errors=len(errors),
        over_token_chunks=over_token,
        repeated_chunks=repeated,
        error_chunks=errors,
    )


def collection(row: dict[str, Any]) -> Collection:
    return Collection(
        id=str(row.get("_id") or ""),
        name=str(row.get("name") or ""),
        type=str(row.get("type") or ""),
        data_amount=int(row.get("dataAmount") or 0),
        training_amount=int(row.get("trainingAmount") or 0),
        raw=row,
    )


def search_hit(item: dict[str, Any]) -> SearchHit:
    scores = {
        str(score["type"]): float(score.get("value") or 0)
        for score in _items(item.get("score"))
        if score.get("type")
    }
    return SearchHit(
        id=str(item.get("id") or ""),
        collection_id=str(item.get("collectionId") or ""),
        source_name=str(item.get("sourceName") or ""),
        q=str(item.get("q") or ""),
        a=str(item.get("a") or ""),
        scores=scores,
        dataset_id=str(item.get("datasetId") or ""),
    )


def answer_text(content: Any) -> str:
    """choices[0].message.content: a string for one text item, '' for none, else the list of
    items, whose text ones are joined here (K10)."""
    if isinstance(content, str):
        return content
    texts = []
    for item in _items(content):
        text = item.get("text")
        if item.get("type") == "text" and isinstance(text, dict) and text.get("content"):
            texts.append(str(text["content"]))
    return "\n\n".join(texts)


def chat_answer(body: dict[str, Any]) -> ChatAnswer:
    """From a non-streamed `detail: true` completion: the answer and the search node's quotes."""
    choices = _items(body.get("choices"))
    message = choices[0].get("message") if choices else None
    content = message.get("content") if isinstance(message, dict) else ""
    quotes = [
        search_hit(quote)
        for node in _items(body.get("responseData"))
        if node.get("moduleType") == SEARCH_NODE_TYPE
        for quote in _items(node.get("quoteList"))
    ]
    return ChatAnswer(text=answer_text(content), quotes=quotes)
