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


def ascii_lower(text: str) -> str:
    return text.translate(_ASCII_LOWER)


def search_fold(text: str) -> str | None:
    """The lowered form search must use, or None when Lua's ASCII lower suffices.

    Redis' Lua `string.lower` only folds ASCII; storing a folded copy only for
    text where that differs keeps memory low for the common case.
    """
    lowered = text.lower()
    return lowered if lowered != ascii_lower(text) else None


_ASCII_LOWER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}
