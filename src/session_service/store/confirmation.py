"""Which answers still need their read confirmed (REDIS_CONFIRMED_READS).

With asynchronous replication, a read on the master can show a write that no
replica holds yet; a failover then loses it, and the id it showed is given to
another message. A confirmed read answers only once REDIS_MIN_REPLICAS_ACK
replicas hold everything it showed.

Each request has a ticket, a mutable object in a context variable (code that runs
in a copied context, a thread or a task group, still holds the same ticket):

- every command sent records the server it went to (`ServedBy`, mixed into every
  connection class), so a barrier can tell that the answer was read from the server
  it confirms: a failover between the read and the barrier would otherwise confirm
  the new master's data while the answer shows the old one's;
- a write whose own WAIT ran after a barrier confirms everything its server held,
  its answer included: the ticket is then confirmed, and the API skips a second
  round trip until the request reads again;
- an answer built without reading Redis (a refused body) needs no confirmation.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any


class Ticket:
    """One request's answer: the servers read since the last confirmation."""

    __slots__ = ("servers",)

    def __init__(self) -> None:
        self.servers: set[tuple[str, int]] = set()

    @property
    def confirmed(self) -> bool:
        """Nothing was read since the last confirmation (or at all)."""
        return not self.servers


_current: ContextVar[Ticket | None] = ContextVar("read_confirmation", default=None)


def begin_ticket() -> Ticket:
    """Open the ticket of the request being served."""
    ticket = Ticket()
    _current.set(ticket)
    return ticket


def current_ticket() -> Ticket | None:
    return _current.get()


def mark_confirmed() -> None:
    """A write's WAIT confirmed everything its server held when it ran, its answer
    included; or the answer shows nothing a failover could take back."""
    ticket = _current.get()
    if ticket is not None:
        ticket.servers.clear()


class ServedBy:
    """Mixin for a redis-py asyncio connection class: the request's ticket records the
    server each command went to (its address once connected, as the command left)."""

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        await super().send_packed_command(command, check_health)  # type: ignore[misc]
        ticket = _current.get()
        if ticket is not None:
            conn: Any = self
            ticket.servers.add((conn.host, conn.port))
