"""Docs generated from the code: `python -m session_service.docs` writes them,
`--check` fails when they are stale or an endpoint is under-documented."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from session_service import docs, errors
from session_service.api import handlers
from tests.conftest import create_session, user

ROOT = Path(__file__).resolve().parents[2]


def _docs(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Run the generator in-process: (exit code, stderr)."""
    capsys.readouterr()
    code = docs.main(list(args))
    return code, capsys.readouterr().err


def _fresh_docs(root: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """A copy of the README and the manual in `root`, with every generated file written there."""
    shutil.copy(ROOT / "README.md", root / "README.md")
    shutil.copytree(ROOT / "docs", root / "docs", ignore=shutil.ignore_patterns("api"))
    code, err = _docs("--root", str(root), capsys=capsys)
    assert code == 0, err
    return root


def _committed_spec() -> dict[str, Any]:
    spec: dict[str, Any] = json.loads((ROOT / "docs/api/openapi.json").read_text())
    return spec


def _section(name: str, page: str = "README.md") -> str:
    readme = (ROOT / page).read_text()
    start = readme.index(f"<!-- GENERATED:{name} -->")
    return readme[start : readme.index(f"<!-- /GENERATED:{name} -->")]


def test_committed_docs_match_what_the_code_generates() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "session_service.docs", "--check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_generated_docs_do_not_depend_on_the_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _fresh_docs(tmp_path, capsys)
    for name, value in {"SERVICE_VERSION": "9.9.9", "PORT": "9999", "ENVIRONMENT": "prod"}.items():
        monkeypatch.setenv(name, value)
    (root / ".env").write_text("MAX_MESSAGE_BYTES=10\n")
    monkeypatch.chdir(root)
    code, err = _docs("--check", "--root", str(root), capsys=capsys)
    assert code == 0, err


def test_check_names_a_stale_readme_section_and_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    readme = _fresh_docs(tmp_path, capsys) / "README.md"
    stale = readme.read_text().replace("| `GET` | `/health` |", "| `GET` | `/healthz` |")
    readme.write_text(stale)
    code, err = _docs("--check", "--root", str(tmp_path), capsys=capsys)
    assert code == 1
    assert "README.md is out of date" in err
    assert "-| `GET` | `/healthz` |" in err
    assert "make docs" in err
    assert readme.read_text() == stale


def test_generating_restores_a_stale_openapi_document(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    yaml_path = _fresh_docs(tmp_path, capsys) / "docs/api/openapi.yaml"
    fresh = yaml_path.read_text()
    yaml_path.write_text("stale: true\n")
    assert _docs("--root", str(tmp_path), capsys=capsys)[0] == 0
    assert yaml_path.read_text() == fresh


def test_check_fails_when_a_generated_file_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (_fresh_docs(tmp_path, capsys) / "docs/api/openapi.json").unlink()
    code, err = _docs("--check", "--root", str(tmp_path), capsys=capsys)
    assert code == 1
    assert "docs/api/openapi.json is out of date" in err


#: A page broken one way -> (the page, the text replaced, its replacement, what --check says).
BROKEN_PAGES = {
    "the_readme_lost_its_markers": (
        "README.md",
        "<!-- /GENERATED:STATS -->",
        "",
        "README.md lacks the markers of GENERATED:STATS",
    ),
    "a_setting_is_missing_from_the_configuration_page": (
        "docs/configuration.md",
        "`MAX_MESSAGE_BYTES`",
        "MAX_MESSAGE_BYTES",
        "docs/configuration.md does not document the setting MAX_MESSAGE_BYTES",
    ),
    **{
        f"{page}_shows_a_wrong_default": (
            page,
            "| Port | `8001` |",
            "| Port | `8080` |",
            f"{page} shows PORT's default as `8080`; the code says `8001`",
        )
        for page in ("README.md", "docs/configuration.md")
    },
}


@pytest.mark.parametrize(("page", "old", "new", "message"), BROKEN_PAGES.values(), ids=BROKEN_PAGES)
def test_check_fails_when_a_page_is_broken(
    page: str, old: str, new: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _fresh_docs(tmp_path, capsys) / page
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    code, err = _docs("--check", "--root", str(tmp_path), capsys=capsys)
    assert code == 1
    assert message in err


def test_yaml_and_json_documents_hold_the_same_spec() -> None:
    assert yaml.safe_load((ROOT / "docs/api/openapi.yaml").read_text()) == _committed_spec()


def test_committed_spec_documents_every_endpoint_fully() -> None:
    assert docs.problems(_committed_spec()) == []


def test_an_endpoint_without_summary_or_description_is_reported() -> None:
    spec = _committed_spec()
    op = spec["paths"]["/api/v1/sessions"]["post"]
    del op["summary"]
    op["description"] = " "
    assert docs.problems(spec) == [
        "POST /api/v1/sessions: no summary",
        "POST /api/v1/sessions: no description",
    ]


def test_an_api_endpoint_missing_its_error_responses_is_reported() -> None:
    spec = _committed_spec()
    responses = spec["paths"]["/api/v1/sessions/{session_id}/messages"]["post"]["responses"]
    del responses["401"], responses["413"]
    assert docs.problems(spec) == [
        "POST /api/v1/sessions/{session_id}/messages: error responses 401, 413 are not documented"
    ]


def test_an_error_response_without_the_error_body_schema_is_reported() -> None:
    spec = _committed_spec()
    spec["paths"]["/api/v1/sessions"]["get"]["responses"]["404"] = {
        "description": "nope",
        "content": {"text/plain": {"schema": {"type": "string"}}},
    }
    assert docs.problems(spec) == [
        "GET /api/v1/sessions: error response 404 lacks the ErrorBody schema"
    ]


def test_readme_api_table_lists_every_operation_of_the_spec() -> None:
    table = _section("API_TABLE")
    for method, path, op in docs._walk(_committed_spec()):
        assert f"| `{method.upper()}` | `{path}` | {op['summary']} |" in table


def test_readme_lists_every_error_code_the_service_answers_with() -> None:
    codes = _section("RESPONSE_CODES", "docs/api.md")
    answered = {cls.code for cls in errors.ALL_ERRORS} | {"validation_error", "internal_error"}
    answered |= set(handlers._HTTP_CODES.values())
    for code in sorted(answered):
        assert f"| `{code}` |" in codes, code


def test_readme_stats_hold_counts_derived_from_the_code() -> None:
    from session_service.config import Settings

    stats = _section("STATS")
    operations = docs.operations(_committed_spec())
    assert f"| HTTP endpoints | {len(operations)} |" in stats
    assert f"| Settings (environment variables) | {len(Settings.model_fields)} |" in stats
    assert re.search(r"\d{4}-\d{2}-\d{2}", stats) is None, "no dates in generated docs"


def test_fill_replaces_only_the_text_between_paired_markers() -> None:
    readme = "top\n<!-- GENERATED:X -->\nold\n<!-- /GENERATED:X -->\nbottom\n"
    assert docs.fill(readme, {"X": "new"}) == (
        "top\n<!-- GENERATED:X -->\nnew\n<!-- /GENERATED:X -->\nbottom\n"
    )


async def test_metrics_media_type_is_documented_as_served(client: httpx.AsyncClient) -> None:
    served = (await client.get("/metrics")).headers["content-type"]
    documented = _committed_spec()["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(documented) == [served]
    assert served.startswith("text/plain")


async def test_markdown_export_media_type_is_documented_as_served(
    client: httpx.AsyncClient,
) -> None:
    session = await create_session(client)
    response = await client.get(
        f"/api/v1/sessions/{session['session_id']}/export",
        params={"format": "markdown"},
        headers=user(),
    )
    media_type = response.headers["content-type"].split(";")[0]
    assert media_type == "text/markdown"
    path = _committed_spec()["paths"]["/api/v1/sessions/{session_id}/export"]
    assert media_type in path["get"]["responses"]["200"]["content"]


def test_readme_configuration_table_matches_every_default_in_the_code() -> None:
    readme = (ROOT / "docs/configuration.md").read_text()
    assert docs.settings_problems(readme) == []
    wrong = readme.replace("| `1.5` |", "| `2.5` |").replace("| `true` |", "| `false` |")
    # REDIS_TIMEOUT_SECONDS, and every setting whose default is `true` (metrics, access log...)
    assert len(docs.settings_problems(wrong)) == 1 + readme.count("| `true` |")
    assert readme.count("| `true` |") >= 2
