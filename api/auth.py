"""Bearer tokens bound to clients; a client never sees another client's data."""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from aiohttp import web

from api.errors import Problem

ADMIN = "*"
ME = "@me"
REALM = "callbackd"


class TokenTable:
    """Looks a presented token up in constant time against every configured token."""

    def __init__(self, tokens: Mapping[str, str]) -> None:
        self.replace(tokens)

    def replace(self, tokens: Mapping[str, str]) -> None:
        """Swap in a new set of tokens (config reload) in one assignment."""
        self._tokens = [(token.encode(), client) for token, client in tokens.items()]

    def client_of(self, presented: str) -> str | None:
        candidate = presented.encode()
        found = None
        for token, client in self._tokens:
            # Every entry is compared, so timing says nothing about which one matched.
            if hmac.compare_digest(token, candidate):
                found = client
        return found


def challenge(invalid_token: bool) -> str:
    """The `WWW-Authenticate` value of a 401 (RFC 6750 §3): a request that carried no
    bearer token gets the bare challenge, one whose token is wrong also the error."""
    value = f'Bearer realm="{REALM}"'
    if invalid_token:
        value += ', error="invalid_token", error_description="the token is not valid"'
    return value


def bearer_client(request: web.Request, tokens: TokenTable) -> str:
    """The client bound to the request's token ('*' for an admin token)."""
    header = request.headers.get("Authorization", "")
    scheme, _, presented = header.partition(" ")
    bearer = scheme.lower() == "bearer"
    client = tokens.client_of(presented.strip()) if bearer else None
    if client is None:
        raise Problem(
            401,
            "a valid 'Authorization: Bearer <token>' header is required",
            headers={"WWW-Authenticate": challenge(invalid_token=bearer)},
        )
    return client


def path_client(request: web.Request, tokens: TokenTable) -> str:
    """The client named in the path, checked against the token. Another client's id is a
    404, exactly like an id that does not exist, so ids leak nothing."""
    owner = bearer_client(request, tokens)
    named = request.match_info["client_id"]
    if named == ME:
        if owner == ADMIN:
            raise Problem(400, "an admin token has no client of its own: name the client id")
        return owner
    if owner not in (ADMIN, named):
        raise Problem(404, "no such resource")
    return named
