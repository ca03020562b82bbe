"""Small text rules: titles derived from messages and search folding."""

from __future__ import annotations

TITLE_FROM_MESSAGE_CHARS = 60


def title_from_message(content: str, limit: int = TITLE_FROM_MESSAGE_CHARS) -> str:
    """About `limit` characters of the first line, cut at a word boundary."""
    text = " ".join(content.split())
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    if space >= limit // 2:
        cut = cut[:space]
    return cut.rstrip(" .,;:-") + "…"


def search_fold(text: str) -> str:
    """The lowered copy search matches against, stored beside the text.

    Redis' Lua `string.lower` folds only ASCII and lowering on every search costs
    more than the match itself; a stored copy is exact for any script and cheap.
    """
    return text.lower()
