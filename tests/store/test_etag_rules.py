"""Every Lua script that writes follows lib.lua's ETag rules, or says why it need not.

A script added later that changes a session without calling touch_session or
touch_messages would leave clients with a stale ETag (a 304 for a changed
session, an If-Match that passes over a change); this fails until it does, or
until it is listed below with the reason it changes nothing a client sees.
"""

from __future__ import annotations

import re
from importlib import resources

WRITES = re.compile(r"redis\.call\('(?:HSET|HINCRBY|HDEL|XADD|XDEL|ZADD|RENAME|UNLINK|DEL)'")
# touch_*(), or writing the version field itself in the record's one HSET (append and
# heartbeat fold the bump into it to save Redis calls).
TOUCHES = re.compile(r"\btouch_(?:session|messages)\(|'ev'; fields\[|'ev', I\(ev\)")
#: Scripts that write without moving an existing session's ETag, and why.
EXEMPT = {
    "create": "a new session starts at its first ETag (a resume does touch)",
    "fork": "publishes a new session",
    "import_commit": "publishes a new (imported) session",
    "import_stage": "stages messages no session shows yet",
    "copy": "builds a copy no session shows yet",
    "delete": "the session is gone",
    "delete_all": "the sessions are gone",
    "erase": "the sessions are gone",
    "erase_strays": "removes keys of sessions that are gone",
    "search": "writes only the walk's snapshot of matches, never a session",
    "link_case": "case links are not part of a session's representation",
    "unlink_case": "case links are not part of a session's representation",
}


def _scripts() -> dict[str, str]:
    folder = resources.files("session_service.store").joinpath("lua")
    return {
        path.name.removesuffix(".lua"): re.sub(r"--[^\n]*", "", path.read_text())
        for path in folder.iterdir()
        if path.name.endswith(".lua") and path.name != "lib.lua"
    }


def test_every_writing_script_moves_the_etag_or_is_exempt_for_a_reason() -> None:
    scripts = _scripts()
    unexplained = [
        name
        for name, source in scripts.items()
        if WRITES.search(source) and not TOUCHES.search(source) and name not in EXEMPT
    ]
    assert unexplained == [], "call touch_session/touch_messages (lib.lua) or explain in EXEMPT"
    assert [name for name in EXEMPT if name not in scripts] == [], "exempt scripts that are gone"


def test_every_conditional_script_checks_the_precondition_before_it_writes() -> None:
    for name, source in _scripts().items():
        if "if_match" not in source:
            continue
        check = source.find("precondition(")
        first_write = WRITES.search(source)
        assert check >= 0, f"{name} takes If-Match but never checks it"
        if first_write is not None:
            assert check < first_write.start(), f"{name} writes before checking If-Match"
