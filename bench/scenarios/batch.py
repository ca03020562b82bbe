"""An agent turn of 4 messages: one batch append against 4 single appends (issue 23).

The turn is what an agent writes after each model call: the user's question, the
assistant's tool call, the tool's result, the assistant's answer (256-byte
contents, a fresh call id per turn). Both rows write the same turns over 1,000
sessions, one writer per session at a time (request i goes to session i % n, so
with far more sessions than connections the session's previous request has been
answered before it is sent, and a tool result never overtakes its call). The
check column gives turns per second and the Redis time per turn.
"""

from __future__ import annotations

from typing import Any

import orjson

from bench.context import SESSIONS, Ctx
from bench.loadgen import Result, http_request
from bench.registry import scenario
from bench.report import Row
from bench.seed import CONTENT_256, seed_sessions

PER_TURN = 4


def agent_turn(turn: int) -> list[dict[str, Any]]:
    call = f"call-{turn}"
    return [
        {"role": "user", "content": CONTENT_256},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"id": call, "name": "kubectl", "arguments": {"cmd": "get pods"}}],
        },
        {"role": "tool", "content": CONTENT_256, "tool_call_id": call},
        {"role": "assistant", "content": CONTENT_256},
    ]


async def _stored_exactly_once(ctx: Ctx, user: str, sids: list[str], acked: int) -> str:
    """Every session holds whole turns with ids 1..n, and as many messages as were acked."""
    stored = 0
    for sid in sids:
        stats = await ctx.store.stats(user, sid)
        stored += stats["message_count"]
    failed = stored != acked
    return f"acked {acked} msgs, stored {stored}" + (" MISMATCH" if failed else "")


def _acked_batch_messages(result: Result) -> int:
    return sum(len(orjson.loads(body).get("messages", ())) for body in result.bodies)


@scenario("agent-turn", order=32)
async def agent_turns(ctx: Ctx) -> list[Row]:
    n = 200 if ctx.quick else 1000
    singles_user, batch_user = "bench-turn-singles", "bench-turn-batch"
    singles_sids = await seed_sessions(ctx.store, singles_user, n)
    batch_sids = await seed_sessions(ctx.store, batch_user, n)

    def one_message(i: int) -> bytes:
        k = i // n  # this session's k-th message
        body = agent_turn(k // PER_TURN)[k % PER_TURN]
        return http_request(
            "POST", f"{SESSIONS}/{singles_sids[i % n]}/messages", singles_user, body
        )

    def one_turn(i: int) -> bytes:
        body = {"messages": agent_turn(i // n)}
        return http_request(
            "POST", f"{SESSIONS}/{batch_sids[i % n]}/messages/batch", batch_user, body
        )

    singles = await ctx.load(
        "agent turn: 4 single appends", one_message, warmup=0, ok_status=(201,),
        keep_bodies=True, cost="turn as 4 appends",
    )  # fmt: skip
    batched = await ctx.load(
        "agent turn: one batch of 4", one_turn, warmup=0, ok_status=(201,),
        keep_bodies=True, cost="turn as one batch",
    )  # fmt: skip
    ctx.results["turn as 4 appends"] = singles
    ctx.results["turn as one batch"] = batched

    singles_cost = ctx.costs["turn as 4 appends"]
    batch_cost = ctx.costs["turn as one batch"]
    singles_turns = singles.rps / PER_TURN
    singles_redis = singles_cost.usec * PER_TURN
    singles_cpu = (singles.server_us or 0) * PER_TURN
    singles_check = await _stored_exactly_once(
        ctx, singles_user, singles_sids, singles.statuses.get(201, 0)
    )
    batch_check = await _stored_exactly_once(
        ctx, batch_user, batch_sids, _acked_batch_messages(batched)
    )
    rows = [
        ctx.row(
            singles,
            f"{singles_turns:.0f} turns/s; Redis {singles_redis:.1f} us/turn "
            f"(main thread {singles_cost.cpu_usec * PER_TURN:.1f}); "
            f"server cpu {singles_cpu:.0f} us/turn; {singles_check}",
            "MISMATCH" in singles_check,
        ),
        ctx.row(
            batched,
            f"{batched.rps:.0f} turns/s = {batched.rps / max(singles_turns, 1e-9):.2f} x singles; "
            f"Redis {batch_cost.usec:.1f} us/turn "
            f"({batch_cost.usec / max(singles_redis, 1e-9):.2f} x; main thread "
            f"{batch_cost.cpu_usec:.1f}); server cpu {batched.server_us or 0:.0f} us/turn; "
            f"{batch_check}",
            "MISMATCH" in batch_check,
        ),
    ]
    return rows
