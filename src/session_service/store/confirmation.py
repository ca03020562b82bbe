"""Which answers still need their read confirmed (REDIS_CONFIRMED_READS).

With asynchronous replication, a read on the master can show a write that no
replica holds yet; a failover then loses it, and the id it showed is given to
another message. A confirmed read answers only once REDIS_MIN_REPLICAS_ACK
replicas hold everything it showed. A write whose own WAIT ran after a barrier
has confirmed its answer already, so the request is marked and the API skips a
second round trip. The mark is a mutable ticket in a context variable: code
that runs in a copied context (a thread, a task group) still marks the same
ticket the API layer holds.
"""

from __future__ import annotations

from contextvars import ContextVar


class Ticket:
    """One request's answer: whether a write's WAIT confirmed it already."""

    __slots__ = ("confirmed",)

    def __init__(self) -> None:
        self.confirmed = False


_current: ContextVar[Ticket | None] = ContextVar("read_confirmation", default=None)


def begin_ticket() -> Ticket:
    """Open the ticket of the request being served."""
    ticket = Ticket()
    _current.set(ticket)
    return ticket


def mark_confirmed() -> None:
    """A write confirmed everything the server held when it ran, its answer included."""
    ticket = _current.get()
    if ticket is not None:
        ticket.confirmed = True
