"""Session statuses and the transitions between them."""

from __future__ import annotations

from enum import StrEnum


class SessionStatus(StrEnum):
    ACTIVE = "active"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    ARCHIVED = "archived"
    ABANDONED = "abandoned"


ALL_STATUSES: tuple[str, ...] = tuple(s.value for s in SessionStatus)

#: Statuses listed and searched when the caller does not ask for archived ones.
UNARCHIVED: tuple[str, ...] = tuple(s for s in ALL_STATUSES if s != SessionStatus.ARCHIVED)

#: Statuses a `client_id` create may resume.
RESUMABLE: frozenset[str] = frozenset({SessionStatus.ACTIVE, SessionStatus.IN_PROGRESS})

# Archived has no way out but `restore`, which returns to the status before archiving.
TRANSITIONS: dict[str, frozenset[str]] = {
    SessionStatus.ACTIVE: frozenset(
        {
            SessionStatus.IN_PROGRESS,
            SessionStatus.COMPLETED,
            SessionStatus.ABANDONED,
            SessionStatus.ARCHIVED,
        }
    ),
    SessionStatus.IN_PROGRESS: frozenset(
        {SessionStatus.COMPLETED, SessionStatus.ABANDONED, SessionStatus.ARCHIVED}
    ),
    SessionStatus.COMPLETED: frozenset({SessionStatus.IN_PROGRESS, SessionStatus.ARCHIVED}),
    SessionStatus.ABANDONED: frozenset({SessionStatus.IN_PROGRESS, SessionStatus.ARCHIVED}),
    SessionStatus.ARCHIVED: frozenset(),
}


def allowed_from(target: str) -> list[str]:
    """Statuses from which `target` may be reached (the store enforces this atomically)."""
    return sorted(src for src, targets in TRANSITIONS.items() if target in targets)


def allowed_targets(current: str) -> list[str]:
    return sorted(TRANSITIONS.get(current, frozenset()))


def transition_detail(current: str, target: str) -> str:
    targets = allowed_targets(current)
    if current == SessionStatus.ARCHIVED:
        return f"Cannot change status from archived to {target}; use POST /restore"
    return (
        f"Cannot change status from {current} to {target}; "
        f"allowed: {', '.join(targets) if targets else 'none'}"
    )
