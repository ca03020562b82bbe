"""The layers keep to their side: HTTP stays in api/, storage encodings in store/.

The API reaches the store only through `session_service.store` (its public
interface), and nothing in store/ (Python strings or Lua code) names an HTTP
header or status: the store speaks domain values.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "session_service"
# Not "etag": the store keeps each session's version tag (lua/lib.lua `etag`); the
# API is what sends it as the ETag header.
HEADERS = re.compile(
    r"idempotency-key|x-user-id|x-user-roles|x-request-id|x-gateway-token|retry-after|"
    r"content-type|content-disposition|if-match|if-none-match|location|authorization",
    re.IGNORECASE,
)
STATUSES = re.compile(r"\b(200|201|204|304|400|401|403|404|405|408|409|412|413|422|429|5\d\d)\b")


def _docstrings(tree: ast.AST) -> set[int]:
    """Ids of the constants that are docstrings (prose may name anything)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                out.add(id(body[0].value))
    return out


def test_the_api_imports_only_the_stores_public_interface() -> None:
    offenders = []
    for path in sorted((SRC / "api").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            for name in names:
                if name.startswith("session_service.store."):
                    offenders.append(f"{path.relative_to(SRC)}: {name}")
    assert offenders == []


def test_no_python_string_in_the_store_names_an_http_header_or_status() -> None:
    offenders = []
    for path in sorted((SRC / "store").rglob("*.py")):
        tree = ast.parse(path.read_text())
        skip = _docstrings(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                if id(node) in skip:
                    continue
                if HEADERS.search(node.value) or STATUSES.search(node.value):
                    offenders.append(f"{path.name}:{node.lineno}: {node.value!r}")
    assert offenders == []


def test_no_lua_script_names_an_http_header_or_status() -> None:
    offenders = []
    for path in sorted((SRC / "store" / "lua").glob("*.lua")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("--", 1)[0]
            if HEADERS.search(code) or STATUSES.search(code):
                offenders.append(f"{path.name}:{number}: {code.strip()}")
    assert offenders == []


def test_the_checks_would_catch_what_they_look_for() -> None:
    assert HEADERS.search("retry with the same Idempotency-Key")
    assert STATUSES.search("remember(201, sid)")
    assert not STATUSES.search("local ttl = A.archived_ttl_ms")
