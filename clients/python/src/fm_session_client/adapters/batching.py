"""Cutting a long list of messages into batch appends the service takes."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from fm_session_client.models import MessageCreate

#: The batch append's bounds: messages per batch, and bytes well under MAX_REQUEST_BYTES.
BATCH_MESSAGES = 64
BATCH_BYTES = 768 * 1024
#: Allowance per message for its JSON framing, role, metadata and tool fields.
_OVERHEAD = 256


def batches(messages: Sequence[MessageCreate]) -> Iterator[list[MessageCreate]]:
    """Consecutive runs of messages that fit one batch append, in order."""
    batch: list[MessageCreate] = []
    size = 0
    for message in messages:
        length = len(message.content.encode()) + _OVERHEAD
        if batch and (len(batch) == BATCH_MESSAGES or size + length > BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(message)
        size += length
    if batch:
        yield batch
