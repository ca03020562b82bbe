"""Documentation generated from the code: the OpenAPI documents and the generated
sections of README.md and the manual's pages under docs/.

    python -m session_service.docs           # (re)write docs/api/openapi.{json,yaml} and the
                                             # generated sections of README.md and docs/*.md
    python -m session_service.docs --check   # exit 1 when that would change a file, or when an
                                             # endpoint lacks a summary, description or errors

The output depends on the code only: the app is built from the settings' defaults
(no environment, no `.env`), keys are ordered deterministically and nothing
carries a date.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from http import HTTPStatus
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from session_service import errors
from session_service.api.responses import BODY_ERRORS, COMMON_API_ERRORS
from session_service.config import Settings

ROOT = Path(__file__).resolve().parents[2]
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

#: Codes answered outside the error tree (api/handlers.py): routing failures and bugs.
EDGE_CODES: tuple[tuple[int, str, str], ...] = (
    (400, "bad_request", "The HTTP request could not be parsed"),
    (404, "not_found", "No endpoint at this path"),
    (405, "method_not_allowed", "The path exists, but not with this method"),
    (500, "internal_error", "An unexpected failure; the request id finds it in the logs"),
)

#: What a status means in this API, beyond its reason phrase.
STATUS_NOTES: dict[int, str] = {
    200: "Success; a create that resumed a live session by `client_id` also answers 200",
    201: "Created: a new session, an appended message, or an appended batch",
    204: "Done, no body (delete, unlink)",
    304: "`If-None-Match` named the current ETag: nothing changed, no body",
    400: "Malformed identity headers, or an unparsable HTTP request",
    401: "No identity, or the gateway token is missing or wrong",
    403: "The operation needs the `admin` role",
    404: "No such session or message for this caller (another user's session is also 404)",
    405: "Method not allowed on this path",
    408: "The request body arrived too slowly",
    409: "The session's state forbids the change",
    412: "`If-Match` did not name the current ETag; the body and `ETag` give the current one",
    413: "The body or a message is too large",
    422: "The request is invalid",
    429: "Rate limited; see `Retry-After`",
    500: "A bug; report it with the `X-Request-ID`",
    503: "Storage is unreachable (or `/ready`: not ready); retry after `Retry-After`",
    507: "Storage is out of memory; nothing was written",
}

BADGES = (
    "[![License](https://img.shields.io/badge/License-Apache%202.0-blue.svg)](#license)",
    "[![Python](https://img.shields.io/badge/python-3.11%2B-blue.svg)](pyproject.toml)",
    "[![OpenAPI](https://img.shields.io/badge/OpenAPI-{openapi}-green.svg)](docs/api/openapi.yaml)",
    "[![Docs](https://img.shields.io/badge/docs-generated%20from%20code-success.svg)]"
    "(docs/index.md)",
)

#: The page whose configuration table must list every setting with its default.
CONFIGURATION_PAGE = "docs/configuration.md"


class _DefaultsOnly(Settings):
    """The settings' defaults, whatever the environment or `.env` say."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    spec: dict[str, Any]


def openapi_spec() -> dict[str, Any]:
    """The app's OpenAPI document, with deterministically ordered responses and schemas."""
    from session_service.app import create_app

    # create_app configures logging; keep the generator quiet.
    app = create_app(_DefaultsOnly(log_level="ERROR"))
    spec: dict[str, Any] = app.openapi()
    for _, _, op in _walk(spec):
        op["responses"] = dict(sorted(op.get("responses", {}).items()))
    components = spec.get("components", {})
    for name, section in list(components.items()):
        components[name] = dict(sorted(section.items()))
    return spec


def _walk(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    out = []
    for path, item in spec.get("paths", {}).items():
        for method, op in item.items():
            if method in HTTP_METHODS:
                out.append((method, path, op))
    return out


def operations(spec: dict[str, Any]) -> list[Operation]:
    return [Operation(m.upper(), p, op) for m, p, op in _walk(spec)]


def render_json(spec: dict[str, Any]) -> str:
    return json.dumps(spec, indent=2, ensure_ascii=False) + "\n"


def render_yaml(spec: dict[str, Any]) -> str:
    return yaml.safe_dump(spec, sort_keys=False, allow_unicode=True, width=100)


# ---- generated sections ----------------------------------------------------


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def badge_line(spec: dict[str, Any]) -> str:
    return " ".join(BADGES).replace("{openapi}", str(spec.get("openapi", "3")))


def api_table(spec: dict[str, Any]) -> str:
    rows = ["| Method | Path | Summary |", "|---|---|---|"]
    for op in operations(spec):
        rows.append(f"| `{op.method}` | `{op.path}` | {_cell(op.spec.get('summary', ''))} |")
    return "\n".join(rows)


def error_codes() -> list[tuple[int, str, str]]:
    """(status, code, meaning) of every error `code` the service answers with."""
    found = {(cls.status_code, cls.code, cls.default_detail) for cls in errors.ALL_ERRORS}
    found |= {(errors.InvalidRequest.status_code, "validation_error", "The request is invalid")}
    by_code: dict[str, tuple[int, str, str]] = {}
    for entry in sorted(found):
        by_code.setdefault(entry[1], entry)
    for status, code, meaning in EDGE_CODES:
        by_code.setdefault(code, (status, code, meaning))
    return sorted(by_code.values())


def _statuses(spec: dict[str, Any]) -> list[int]:
    found = {int(s) for op in operations(spec) for s in op.spec.get("responses", {})}
    found |= {status for status, _, _ in error_codes()}
    return sorted(found)


def response_codes(spec: dict[str, Any]) -> str:
    codes = error_codes()
    rows = ["| Status | Meaning | Error codes |", "|---|---|---|"]
    for status in _statuses(spec):
        phrase = HTTPStatus(status).phrase
        note = STATUS_NOTES.get(status, phrase)
        listed = ", ".join(f"`{code}`" for s, code, _ in codes if s == status) or "—"
        rows.append(f"| {status} {phrase} | {_cell(note)} | {listed} |")
    rows += ["", "| Code | Status | Meaning |", "|---|---|---|"]
    for status, code, meaning in codes:
        rows.append(f"| `{code}` | {status} | {_cell(meaning)} |")
    return "\n".join(rows)


def _lua_scripts() -> int:
    lua = resources.files("session_service").joinpath("store/lua")
    return sum(1 for f in lua.iterdir() if f.name.endswith(".lua") and f.name != "lib.lua")


def stats(spec: dict[str, Any]) -> str:
    ops = operations(spec)
    api = sum(1 for op in ops if op.path.startswith("/api/"))
    rows = [
        "**Figures**, counted from the code by `make docs`:",
        "",
        "| Figure | Count |",
        "|---|---|",
        f"| HTTP endpoints | {len(ops)} |",
        f"| of which under `/api/v1` | {api} |",
        f"| Error codes | {len(error_codes())} |",
        f"| Settings (environment variables) | {len(Settings.model_fields)} |",
        f"| Lua scripts | {_lua_scripts()} |",
    ]
    return "\n".join(rows)


def fill(text: str, sections: dict[str, str], name_of_file: str = "README.md") -> str:
    """`text` with each `<!-- GENERATED:NAME -->` … `<!-- /GENERATED:NAME -->` refilled."""
    for name, body in sections.items():
        pattern = re.compile(
            rf"(<!-- GENERATED:{name} -->\n).*?(<!-- /GENERATED:{name} -->)", re.DOTALL
        )
        match = pattern.search(text)
        if match is None:
            raise ValueError(f"{name_of_file} lacks the markers of GENERATED:{name}")
        text = text[: match.end(1)] + body + "\n" + text[match.start(2) :]
    return text


def generated_sections(spec: dict[str, Any]) -> dict[str, dict[str, str]]:
    """For each file (relative to the repository), the sections `make docs` fills in it."""
    return {
        "README.md": {
            "BADGE_LINE": badge_line(spec),
            "API_TABLE": api_table(spec),
            "STATS": stats(spec),
        },
        "docs/api.md": {"RESPONSE_CODES": response_codes(spec)},
    }


# ---- checks --------------------------------------------------------------


def _required_statuses(op: Operation) -> set[str]:
    classes = [*COMMON_API_ERRORS]
    if "requestBody" in op.spec:
        classes += BODY_ERRORS
    return {str(cls.status_code) for cls in classes}


def problems(spec: dict[str, Any]) -> list[str]:
    """What the OpenAPI document fails to say: summaries, descriptions, error answers."""
    out = []
    for op in operations(spec):
        name = f"{op.method} {op.path}"
        for field in ("summary", "description"):
            if not str(op.spec.get(field, "")).strip():
                out.append(f"{name}: no {field}")
        responses: dict[str, Any] = op.spec.get("responses", {})
        for status, response in responses.items():
            # HEAD answers never have a body.
            if (
                int(status) not in (204, 304)
                and op.method != "HEAD"
                and not response.get("content")
            ):
                out.append(f"{name}: response {status} documents no media type")
        if op.path.startswith("/api/"):
            missing = sorted(_required_statuses(op) - set(responses))
            if missing:
                out.append(f"{name}: error responses {', '.join(missing)} are not documented")
            for status, response in responses.items():
                if int(status) >= 400 and "ErrorBody" not in json.dumps(response):
                    out.append(f"{name}: error response {status} lacks the ErrorBody schema")
    return out


#: Settings whose default is derived from another one; the configuration page explains it.
DERIVED_DEFAULTS = frozenset({"LOG_FORMAT"})


def _default_token(value: Any) -> str:
    """How a configuration table writes a default."""
    if value is None or value == []:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, list):
        return f"`{','.join(map(str, value))}`"
    if isinstance(value, float):
        return f"`{value:g}`"
    if isinstance(value, Path):
        return str(value)
    return f"`{getattr(value, 'value', value)}`"


def settings_problems(
    text: str, page: str = CONFIGURATION_PAGE, complete: bool = True
) -> list[str]:
    """Settings a configuration table misses (when it must be `complete`), or shows with a
    wrong default. The configuration page lists them all; the README's key settings only
    have to be right."""
    rows: dict[str, str] = {}
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.split("|")]
        if len(cells) == 5 and re.fullmatch(r"`[A-Z0-9_]+`", cells[1]):
            rows[cells[1].strip("`")] = cells[3]
    out = []
    for name, field in Settings.model_fields.items():
        env = name.upper()
        if complete and f"`{env}`" not in text:
            out.append(f"{page} does not document the setting {env}")
        elif env in rows and env not in DERIVED_DEFAULTS:
            token = _default_token(field.default)
            if token not in rows[env]:
                out.append(f"{page} shows {env}'s default as {rows[env]}; the code says {token}")
    return out


def outputs(root: Path, spec: dict[str, Any]) -> dict[Path, str]:
    """Every generated file and the content it should have."""
    out = {
        root / "docs/api/openapi.json": render_json(spec),
        root / "docs/api/openapi.yaml": render_yaml(spec),
    }
    for name, sections in generated_sections(spec).items():
        text = (root / name).read_text(encoding="utf-8")
        out[root / name] = fill(text, sections, name)
    return out


def _diff(current: str, wanted: str, name: str, limit: int = 30) -> list[str]:
    lines = difflib.unified_diff(
        current.splitlines(),
        wanted.splitlines(),
        f"{name} (committed)",
        f"{name} (generated)",
        n=0,
        lineterm="",
    )
    out = [f"  {line}" for line in lines]
    return out[:limit] + ([f"  ... {len(out) - limit} more lines"] if len(out) > limit else [])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m session_service.docs",
        description="Generate docs/api/openapi.{json,yaml} and the generated sections of "
        "README.md and docs/*.md.",
    )
    parser.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 when anything is stale"
    )
    parser.add_argument(
        "--root", type=Path, default=ROOT, help="the repository (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    root: Path = args.root
    spec = openapi_spec()
    try:
        wanted = outputs(root, spec)
    except ValueError as exc:
        print(f"docs: {exc}", file=sys.stderr)
        return 1
    configuration = (root / CONFIGURATION_PAGE).read_text(encoding="utf-8")
    failures = problems(spec) + settings_problems(configuration)
    failures += settings_problems(wanted[root / "README.md"], "README.md", complete=False)
    for path, content in wanted.items():
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == content:
            continue
        if args.check:
            failures.append(f"{path.relative_to(root)} is out of date")
            failures.extend(_diff(current or "", content, str(path.relative_to(root))))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content, encoding="utf-8")
            print(f"wrote {path.relative_to(root)}", file=sys.stderr)
    if failures:
        for failure in failures:
            print(f"docs: {failure}", file=sys.stderr)
        if args.check:
            print("docs: run `make docs` and commit the result", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
