"""Writes the blocking client from the asyncio one, so that its methods are written once.

`SessionClient` (client.py, sessions_api.py, conversation_api.py, feed_api.py) is this
script's output from `AsyncSessionClient` (aio.py and the aio_*_api.py modules): the same
signatures, docstrings and bodies, without `async` and `await`, with each asyncio name
swapped for its blocking twin (`NAMES`). Edit the async module, then run
`python clients/python/unasync.py` (`make client-sync`); `--check` lists the modules that
are stale and exits 1 (tests/client/test_unasync.py runs it).

The rewrite works on tokens, as the `unasync` package does, so strings and comments keep
their text except for the class names in `NAMES`. Then `yield from` replaces each loop
that only re-yields (an async generator cannot say `yield from`), and ruff sorts the
imports and formats the module, so the output is what `make lint` wants.
"""

from __future__ import annotations

import ast
import io
import re
import subprocess
import sys
import tokenize
from pathlib import Path

PACKAGE = Path(__file__).parent / "src" / "fm_session_client"
REPO = Path(__file__).parents[2]

#: The async module -> the blocking module written from it.
MODULES = {
    "aio.py": "client.py",
    "aio_sessions_api.py": "sessions_api.py",
    "aio_conversation_api.py": "conversation_api.py",
    "aio_feed_api.py": "feed_api.py",
}

#: An asyncio name -> its blocking twin (whole names; in strings, only the `Async*` ones).
NAMES = {
    "AsyncSessionClient": "SessionClient",
    "AsyncSessionsApi": "SessionsApi",
    "AsyncConversationApi": "ConversationApi",
    "AsyncFeedApi": "FeedApi",
    "aio_sessions_api": "sessions_api",
    "aio_conversation_api": "conversation_api",
    "aio_feed_api": "feed_api",
    "AsyncClient": "Client",
    "AsyncBaseTransport": "BaseTransport",
    "AsyncIterator": "Iterator",
    "AsyncGenerator": "Generator",
    "aclosing": "closing",
    "asyncio": "time",
    "aread": "read",
    "aclose": "close",
    "aiter_lines": "iter_lines",
    "__aenter__": "__enter__",
    "__aexit__": "__exit__",
}
_CODE = re.compile(r"\b(" + "|".join(map(re.escape, NAMES)) + r")\b")
#: In strings only the class names: "asyncio" or "aclose" in prose stay as they are.
_TEXT = re.compile(r"\b(Async\w+)\b")


def header(source: str) -> str:
    return (
        f"# Written by clients/python/unasync.py from {source}: edit that module, then run\n"
        "# `make client-sync`. tests/client/test_unasync.py fails when this file is stale.\n"
    )


def unasync(text: str) -> str:
    """The module's tokens without `async`/`await`, asyncio names swapped for blocking ones."""
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    end = (1, 0)
    drop_gap = False
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        (row, col), previous = token.start, end
        line = lines[row - 1] if row <= len(lines) else ""
        gap = line[previous[1] if row == previous[0] else 0 : col]
        end = token.end
        if token.type == tokenize.NAME and token.string in {"async", "await"}:
            drop_gap = True  # and the space after the keyword
            out.append(gap)
            continue
        out.append("" if drop_gap else gap)
        drop_gap = False
        if token.type in {tokenize.NAME, tokenize.STRING}:
            names = _CODE if token.type == tokenize.NAME else _TEXT
            out.append(names.sub(lambda match: NAMES.get(match[1], match[1]), token.string))
        else:
            out.append(token.string)
    return _yield_from("".join(out))


def _yield_from(text: str) -> str:
    """Each `for x in y:` whose whole body is `yield x` as `yield from y`."""
    lines = text.splitlines(keepends=True)
    loops = [
        node
        for node in ast.walk(ast.parse(text))
        if isinstance(node, ast.For)
        and isinstance(node.target, ast.Name)
        and not node.orelse
        and len(node.body) == 1
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Yield)
        and isinstance(node.body[0].value.value, ast.Name)
        and node.body[0].value.value.id == node.target.id
    ]
    for loop in sorted(loops, key=lambda node: node.lineno, reverse=True):
        source = ast.get_source_segment(text, loop.iter)
        assert source is not None and loop.end_lineno is not None
        indent = " " * loop.col_offset
        lines[loop.lineno - 1 : loop.end_lineno] = [f"{indent}yield from {source}\n"]
    return "".join(lines)


def _ruff(args: list[str], text: str, target: Path) -> str:
    command = [sys.executable, "-m", "ruff", *args, "--stdin-filename", str(target), "-"]
    done = subprocess.run(
        command, input=text, capture_output=True, text=True, cwd=REPO, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"ruff {args[0]} failed on {target.name}:\n{done.stderr}")
    return done.stdout


def generated(source: str, target: str) -> str:
    """What `target` must hold: `source` rewritten, imports sorted, formatted."""
    text = (PACKAGE / source).read_text(encoding="utf-8")
    body = unasync(text)
    path = PACKAGE / target
    body = _ruff(["check", "--select", "I", "--fix", "--exit-zero", "--quiet"], body, path)
    return _ruff(["format", "--quiet"], header(source) + body, path)


def stale() -> list[str]:
    """The blocking modules that differ from what their async module makes."""
    return [
        target
        for source, target in MODULES.items()
        if (PACKAGE / target).read_text(encoding="utf-8") != generated(source, target)
    ]


def main(argv: list[str]) -> int:
    if argv == ["--check"]:
        behind = stale()
        for target in behind:
            print(f"{PACKAGE / target} is stale: run `make client-sync`", file=sys.stderr)
        return 1 if behind else 0
    if argv:
        print("usage: unasync.py [--check]", file=sys.stderr)
        return 2
    for source, target in MODULES.items():
        (PACKAGE / target).write_text(generated(source, target), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
