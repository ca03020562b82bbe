"""The test apps `running_app` hands out: reused one after another, never shared by two
instances at once (tests/conftest.py)."""

from __future__ import annotations

from tests.conftest import ClientFactory, create_session


async def test_two_instances_with_equal_settings_are_two_apps(make_client: ClientFactory) -> None:
    async with make_client() as one, make_client() as two:
        assert one.app is not two.app  # type: ignore[attr-defined]
        stores = (one.app.state.store, two.app.state.store)  # type: ignore[attr-defined]
        assert stores[0] is not stores[1]
        session = await create_session(one)
        answer = await two.get(
            f"/api/v1/sessions/{session['session_id']}", headers={"X-User-ID": "u1"}
        )
        assert answer.status_code == 200


async def test_an_app_is_reused_after_its_lifespan_with_a_new_store(
    make_client: ClientFactory,
) -> None:
    async with make_client(max_sessions_per_user=7) as first:
        first_app, first_store = first.app, first.app.state.store  # type: ignore[attr-defined]
    async with make_client(max_sessions_per_user=7) as again:
        assert again.app is first_app  # type: ignore[attr-defined]
        assert again.app.state.store is not first_store  # type: ignore[attr-defined]
        assert (
            await again.post("/api/v1/sessions", json={}, headers={"X-User-ID": "u1"})
        ).status_code == 201
    async with make_client(fresh=True, max_sessions_per_user=7) as fresh:
        assert fresh.app is not first_app  # type: ignore[attr-defined]
