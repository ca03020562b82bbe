"""The client against the service's published contract, docs/api/openapi.json.

These fail when the API changes and the client does not: a new or changed schema, a
new field, a new operation, a new error code. No server is needed.
"""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from fm_session_client import AsyncSessionClient, SessionClient, errors, models
from fm_session_client.calls import OPERATIONS

OPENAPI: dict[str, Any] = json.loads(
    (Path(__file__).parents[2] / "docs" / "api" / "openapi.json").read_text(encoding="utf-8")
)
COMPONENTS: dict[str, Any] = OPENAPI["components"]["schemas"]

#: The service's schema name -> the client's model (enums are Literal types).
SCHEMAS: dict[str, type[BaseModel]] = {
    "AppendedBatch": models.AppendedBatch,
    "AppendedMessage": models.AppendedMessage,
    "CaseLinkRequest": models.CaseLinkRequest,
    "CaseLinkResult": models.CaseLinkResult,
    "CaseList": models.CaseList,
    "CleanupReport": models.CleanupReport,
    "ContextCleanup": models.ContextCleanup,
    "CreatedSession": models.CreatedSession,
    "DeletedSessions": models.DeletedSessions,
    "ErasureReport": models.ErasureReport,
    "ErrorBody": models.ErrorBody,
    "FeedEventBody": models.FeedEventBody,
    "FeedPoll": models.FeedPoll,
    "ForkRequest": models.ForkRequest,
    "ForkedFrom": models.ForkedFrom,
    "Health": models.Health,
    "Heartbeat": models.Heartbeat,
    "LinkedCase": models.LinkedCase,
    "Message": models.Message,
    "MessageBatch": models.MessageBatch,
    "MessageCreate": models.MessageCreate,
    "MessagePage": models.MessagePage,
    "Readiness": models.Readiness,
    "RecoveryDetails": models.RecoveryDetails,
    "RecoveryInfo": models.RecoveryInfo,
    "RewindRequest": models.RewindRequest,
    "Rewound": models.Rewound,
    "SearchRequest": models.SearchRequest,
    "SearchResult": models.SearchResult,
    "ServiceInfo": models.ServiceInfo,
    "Session": models.Session,
    "SessionCreate": models.SessionCreate,
    "SessionList": models.SessionList,
    "SessionStats": models.SessionStats,
    "SessionUpdate": models.SessionUpdate,
    "SessionWithMessages": models.SessionWithMessages,
    "StatusCounts": models.StatusCounts,
    "Summary": models.Summary,
    "SummaryCreate": models.SummaryCreate,
    "SummaryList": models.SummaryList,
    "ToolCall": models.ToolCall,
    "UserStatistics": models.UserStatistics,
    "Window": models.Window,
}
#: Client models that stand for a service schema under another name.
ALIASES = {"ReturnedToolCall": "ToolCall"}
ENUMS = {"SessionStatus": models.SessionStatus}


def shape(schema: dict[str, Any], defs: dict[str, Any], aliases: dict[str, str]) -> Any:
    """A comparable skeleton of a JSON schema: types, enums, items, references by name."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        target = defs.get(name, {})
        if "enum" in target:  # an enum compares by its values, inline or by reference
            return shape(target, defs, aliases)
        return frozenset({("ref", aliases.get(name, name))})
    if "anyOf" in schema:
        return frozenset().union(*(shape(part, defs, aliases) for part in schema["anyOf"]))
    if "enum" in schema:
        return frozenset({("enum", frozenset(schema["enum"]))})
    if "const" in schema:
        return frozenset({("enum", frozenset([schema["const"]]))})
    kind = schema.get("type")
    if kind == "array":
        return frozenset({("array", shape(schema.get("items", {}), defs, aliases))})
    if kind == "object":
        extra = schema.get("additionalProperties")
        inner = shape(extra, defs, aliases) if isinstance(extra, dict) and extra else "any"
        keys = schema.get("propertyNames", {}).get("enum")
        return frozenset({("object", inner, frozenset(keys) if keys else None)})
    return frozenset({kind or "any"})


def client_fields(model: type[BaseModel]) -> tuple[dict[str, Any], set[str]]:
    schema = model.model_json_schema(ref_template="#/$defs/{model}")
    defs = schema.get("$defs", {})
    wire = {name for name, info in model.model_fields.items() if not info.exclude}
    props = {
        name: shape(value, defs, ALIASES)
        for name, value in schema["properties"].items()
        if name in wire
    }
    return props, set(schema.get("required", [])) & wire


def test_every_schema_has_a_client_model() -> None:
    service = {name for name, schema in COMPONENTS.items() if "enum" not in schema}
    assert service == set(SCHEMAS), "schemas added to or removed from the API"
    assert {name for name, schema in COMPONENTS.items() if "enum" in schema} == set(ENUMS)


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_model_matches_schema(name: str) -> None:
    schema = COMPONENTS[name]
    expected = {prop: shape(value, COMPONENTS, {}) for prop, value in schema["properties"].items()}
    fields, required = client_fields(SCHEMAS[name])
    assert set(fields) == set(expected), f"{name}: fields differ"
    for prop, value in expected.items():
        assert fields[prop] == value, f"{name}.{prop}: {fields[prop]} != {value}"
    if schema.get("additionalProperties") is False:
        # A request body: what the client must send is what the service requires.
        assert required == set(schema.get("required", [])), f"{name}: required differs"
    else:
        # An answer: the client requires no more than the service promises.
        assert required <= set(schema.get("required", [])), f"{name}: requires too much"
        assert required == set(schema.get("required", [])) - _defaulted(SCHEMAS[name])


def _defaulted(model: type[BaseModel]) -> set[str]:
    return {name for name, info in model.model_fields.items() if not info.is_required()}


@pytest.mark.parametrize("name", sorted(ENUMS))
def test_enums_match(name: str) -> None:
    assert set(ENUMS[name].__args__) == set(COMPONENTS[name]["enum"])


def test_every_operation_has_a_method_in_both_clients() -> None:
    operations = {op["operationId"] for path in OPENAPI["paths"].values() for op in path.values()}
    assert operations == set(OPERATIONS), "operations added to or removed from the API"
    for method in set(OPERATIONS.values()):
        assert callable(getattr(SessionClient, method)), method
        assert callable(getattr(AsyncSessionClient, method)), method


def test_query_parameters_are_known_to_the_client() -> None:
    """Every query parameter of an operation is a keyword of its client method."""
    for path in OPENAPI["paths"].values():
        for op in path.values():
            method = getattr(SessionClient, OPERATIONS[op["operationId"]])
            names = set(inspect.signature(method).parameters)
            for param in op.get("parameters", []):
                wire = param["name"]
                python = {"If-Match": "if_match", "If-None-Match": "if_none_match"}.get(
                    wire, wire.replace("-", "_").lower()
                )
                if param["in"] == "query" and wire == "format":
                    continue  # export() and export_markdown() pick it
                assert python in names, f"{op['operationId']}: {wire} not in {method.__name__}"


def documented_codes() -> set[str]:
    """The `code`s the error answers' descriptions list ("`a`, `b`: ...")."""
    codes: set[str] = set()
    for path in OPENAPI["paths"].values():
        for op in path.values():
            for status, response in op.get("responses", {}).items():
                if int(status) >= 400:
                    head = response.get("description", "").split(":", 1)[0]
                    codes.update(re.findall(r"`([a-z_]+)`", head))
    return codes


def test_every_documented_code_has_its_exception() -> None:
    codes = documented_codes()
    assert len(codes) > 20
    missing = codes - set(errors.ERRORS_BY_CODE)
    assert not missing, f"codes without an exception: {sorted(missing)}"
    unknown = set(errors.ERRORS_BY_CODE) - codes
    assert not unknown, f"exceptions for codes the API no longer has: {sorted(unknown)}"
    for code, cls in errors.ERRORS_BY_CODE.items():
        assert issubclass(cls, errors.ApiError) and cls.code == code
        raised = errors.error_for(418, {"code": code, "detail": "d"}, {})
        assert type(raised) is cls


def test_unknown_codes_fall_back_to_their_family() -> None:
    assert type(errors.error_for(409, {"code": "brand_new", "detail": "x"}, {})) is errors.Conflict
    assert type(errors.error_for(502, "<html>", {})) is errors.ApiError
    precondition = errors.error_for(
        412, {"code": "precondition_failed", "detail": "x"}, {"etag": '"e1"'}
    )
    assert isinstance(precondition, errors.PreconditionFailed) and precondition.etag == '"e1"'
    busy = errors.error_for(
        503, {"code": "storage_unavailable", "detail": "x"}, {"retry-after": "2"}
    )
    assert isinstance(busy, errors.StorageUnavailable) and busy.retry_after == 2.0


def test_sync_and_async_clients_have_the_same_surface() -> None:
    def public(cls: type) -> dict[str, inspect.Signature]:
        return {
            name: inspect.signature(member)
            for name, member in inspect.getmembers(cls, inspect.isfunction)
            if not name.startswith("_") and name not in {"close", "aclose"}
        }

    sync, aio = public(SessionClient), public(AsyncSessionClient)
    assert set(sync) == set(aio)
    assert len(sync) > 35
    for name, signature in sync.items():
        assert list(signature.parameters.values()) == list(aio[name].parameters.values()), name
        member = getattr(AsyncSessionClient, name)
        if name.startswith("iter_") or name == "watch":
            assert inspect.isasyncgenfunction(member), name
        else:
            assert inspect.iscoroutinefunction(member), name
