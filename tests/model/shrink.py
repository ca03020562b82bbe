"""Shrinking a failing history to the fewest operations that still show the violation.

The checker is re-run on sub-histories (the final state stays what it was): an
operation is dropped when the same violation (same kind and subject) is still found
without it. Delta debugging (Zeller's ddmin) over the operations of the violation's
user, then one pass dropping single operations. What is left is the minimal
sub-history; the operations that overlapped it in time on the same sessions are
printed after it as context (what the service was doing meanwhile).
"""

from __future__ import annotations

from collections.abc import Callable

from tests.model.checker import Violation, check
from tests.model.final import FinalState
from tests.model.history import Op

#: Operations on every session of a user.
WHOLE_USER = ("delete_all", "erase")
#: Checks at most this many sub-histories (each check is milliseconds).
MAX_CHECKS = 3000


def shrink(history: list[Op], final: FinalState, violation: Violation) -> list[Op]:
    mine = [op for op in history if op.user == violation.user or violation.user == "?"]
    checks = 0

    def fails(ops: list[Op]) -> bool:
        nonlocal checks
        checks += 1
        return any(v.key == violation.key for v in check(ops, final))

    if not fails(mine):
        mine = list(history)
    return _ddmin(mine, fails, lambda: checks < MAX_CHECKS)


def _ddmin(
    ops: list[Op], fails: Callable[[list[Op]], bool], budget: Callable[[], bool]
) -> list[Op]:
    n = 2
    while len(ops) >= 2 and budget():
        size = max(1, len(ops) // n)
        chunks = [ops[i : i + size] for i in range(0, len(ops), size)]
        reduced = False
        for i in range(len(chunks)):
            rest = [op for j, chunk in enumerate(chunks) if j != i for op in chunk]
            if rest and fails(rest):
                ops, n, reduced = rest, max(n - 1, 2), True
                break
        if not reduced:
            if n >= len(ops):
                break
            n = min(len(ops), n * 2)
    i = 0
    while i < len(ops) and budget():
        rest = ops[:i] + ops[i + 1 :]
        if rest and fails(rest):
            ops = rest
        else:
            i += 1
    return ops


def context(history: list[Op], kept: list[Op]) -> list[Op]:
    """Operations on the kept ones' sessions (or users' whole-user operations) that
    overlapped them in time and are not in the minimal sub-history."""
    if not kept:
        return []
    sids = {op.sid for op in kept if op.sid}
    sids |= {op.body["session_id"] for op in kept
             if op.ok and isinstance(op.body, dict) and "session_id" in op.body}  # fmt: skip
    start, end = min(op.start for op in kept), max(op.end for op in kept)
    chosen = {op.index for op in kept}
    whole_user = WHOLE_USER
    return [
        op for op in history
        if op.index not in chosen and op.start < end and op.end > start
        and (op.sid in sids or op.kind in whole_user or _answers(op) & sids)
        and op.user in {k.user for k in kept}
    ]  # fmt: skip


def report(history: list[Op], final: FinalState, violation: Violation, origin: float) -> str:
    lines = [f"VIOLATION {violation.kind}: {violation.text}"]
    if any(v.key == violation.key for v in check([], final)):
        # The final state alone shows it: no operation is needed, so none is minimal.
        kept: list[Op] = []
        lines.append("the final state alone shows it (no operation is needed)")
    else:
        kept = sorted(shrink(history, final, violation), key=lambda op: op.index)
        lines.append(f"minimal sub-history ({len(kept)} of {len(history)} operations):")
        lines += ["  " + op.describe(origin) for op in kept]
    around = context(history, kept)
    if around:
        lines.append(f"concurrent with it on the same sessions ({len(around)}):")
        lines += ["  " + op.describe(origin) for op in around[:30]]
    if violation.sessions:
        chosen = {op.index for op in kept} | {op.index for op in around[:30]}
        told = [
            op
            for op in history
            if op.index not in chosen
            and (
                _about(op, violation.sessions)
                or (op.kind in WHOLE_USER and op.user == violation.user)
            )
        ]
        lines.append(f"the history of {', '.join(violation.sessions)} (last 30 of {len(told)}):")
        lines += ["  " + op.describe(origin) for op in told[-30:]]
    return "\n".join(lines)


def _about(op: Op, sessions: tuple[str, ...]) -> bool:
    return op.sid in sessions or bool(_answers(op) & set(sessions))


def _answers(op: Op) -> set[str]:
    if op.ok and isinstance(op.body, dict) and "session_id" in op.body:
        return {op.body["session_id"]}
    return set()
