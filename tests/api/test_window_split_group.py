"""Issue 20's suspicion: "a tool result whose call is covered by the latest summary makes
every window `truncated: true`". Confirmed as a fact, kept as the contract (README, The
prompt window): such a result can never join a window (it would come without its call),
so it, and anything between the summary and it, is left out at every budget and the
window says so; the documented remedy, a summary reaching the result, clears it.
"""

from __future__ import annotations

import httpx

from session_service.domain.tokens import MAX_WINDOW_TOKENS
from tests.api.prompt_window import conversation, ids, summarize, window
from tests.helpers import appended, mid


async def test_a_result_split_from_its_call_by_a_summary_truncates_every_window(
    client: httpx.AsyncClient,
) -> None:
    sid = await conversation(client, 1)  # 1
    await appended(
        client, sid, role="assistant", tool_calls=[{"id": "a", "name": "f"}], token_count=1
    )  # 2, fmt: skip
    await summarize(client, sid, mid(2), 1)
    await appended(client, sid, role="user", content="still there?", token_count=1)  # 3
    await appended(client, sid, role="tool", content="r", tool_call_id="a", token_count=1)  # 4
    for n in range(5, 9):
        await appended(client, sid, role="user", content=f"m{n}", token_count=1)

    for budget in (5, 100, MAX_WINDOW_TOKENS):
        data = await window(client, sid, budget)
        # Everything newer than the result that fits, nothing from it back to the summary.
        assert ids(data) == [mid(n) for n in range(5, 9)], budget
        assert data["truncated"] is True, budget

    # The remedy the agent's loop documents: summarize what the window left out.
    await summarize(client, sid, mid(4), 2)
    healed = await window(client, sid, MAX_WINDOW_TOKENS)
    assert ids(healed) == [mid(n) for n in range(5, 9)]
    assert healed["truncated"] is False
