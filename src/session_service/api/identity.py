"""Who is calling: the gateway's proof and the identity headers it sets.

Parsed from the raw ASGI header list so a duplicated `X-User-ID` (which test
clients and some frameworks would merge or silently pick from) is seen.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from dataclasses import dataclass

import orjson

from session_service import errors

MAX_USER_ID = 256
_ROLE_TOKEN = re.compile(r"^[A-Za-z0-9_.:-]+$")


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: str
    email: str | None
    roles: frozenset[str]

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles


def _user_id(raw: bytes) -> str:
    try:
        value = raw.decode("utf-8")
    except UnicodeDecodeError:
        # Decoding invalid UTF-8 any other way could make two byte strings one id.
        raise errors.InvalidIdentity() from None
    if value == "":
        raise errors.MissingIdentity()
    if len(value) > MAX_USER_ID or any(unicodedata.category(ch) == "Cc" for ch in value):
        raise errors.InvalidIdentity()
    return value


def parse_roles(raw: str) -> frozenset[str]:
    text = raw.strip()
    if not text:
        return frozenset()
    if text.startswith("["):
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError:
            raise errors.InvalidRoles() from None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise errors.InvalidRoles()
        return frozenset(v.strip() for v in value if v.strip())
    tokens = [token.strip() for token in text.split(",")]
    if not all(_ROLE_TOKEN.fullmatch(token) for token in tokens):
        raise errors.InvalidRoles()
    return frozenset(tokens)


def check_gateway(headers: list[tuple[bytes, bytes]], secret: bytes) -> None:
    """Exactly one `X-Gateway-Token`, equal to the secret."""
    tokens = [value for name, value in headers if name == b"x-gateway-token"]
    token = tokens[0] if len(tokens) == 1 else b""
    # Digests first: compare_digest alone would leak the secret's length; on equal
    # lengths its time does not depend on where the values differ.
    expected = hashlib.sha256(secret).digest()
    if not hmac.compare_digest(hashlib.sha256(token).digest(), expected):
        raise errors.UntrustedCaller()


def principal_from_headers(headers: list[tuple[bytes, bytes]]) -> Principal:
    user: list[bytes] = []
    emails: list[str] = []
    roles_raw: list[str] = []
    for name, value in headers:
        if name == b"x-user-id":
            user.append(value)
        elif name == b"x-user-email":
            emails.append(value.decode("latin-1"))
        elif name == b"x-user-roles":
            roles_raw.append(value.decode("latin-1"))
    if not user:
        raise errors.MissingIdentity()
    # FaultMaven's gateway forwards a client's own X-User-* headers next to its own:
    # any of them twice is 400 ambiguous_identity (issue 12), never a pick.
    for header, values in (
        ("X-User-ID", user),
        ("X-User-Email", emails),
        ("X-User-Roles", roles_raw),
    ):
        if len(values) > 1:
            raise errors.AmbiguousIdentity(f"More than one {header} header was sent")
    user_id = _user_id(user[0])
    roles = parse_roles(roles_raw[0]) if roles_raw else frozenset[str]()
    return Principal(user_id, emails[0] if emails else None, roles)
