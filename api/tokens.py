"""The token table of the running app; replaced as a whole when the config is reloaded."""

from __future__ import annotations

from aiohttp import web

from api.auth import TokenTable

TOKENS = web.AppKey("tokens", TokenTable)


def tokens(request: web.Request) -> TokenTable:
    return request.app[TOKENS]
