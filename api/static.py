"""Pages the daemon serves from files shipped inside the package (no CDN, nothing
fetched from other hosts): one handler per file, read once at start."""

from __future__ import annotations

from importlib.resources.abc import Traversable

from aiohttp import web

from api.routing import Handler, Route

# A page may load only its own assets and talk only to this daemon.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
        " connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def asset_handler(folder: Traversable, file: str, content_type: str) -> Handler:
    """A handler answering `file` of `folder` with `content_type` and SECURITY_HEADERS."""
    body = folder.joinpath(file).read_bytes()

    async def serve(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type=content_type, headers=SECURITY_HEADERS)

    return serve


def asset_routes(
    folder: Traversable, assets: dict[str, tuple[str, str, str, str]], tag: str
) -> list[Route]:
    """The open routes of a page's files: path -> (file, content type, operation id,
    summary)."""
    return [
        Route(
            "GET",
            path,
            asset_handler(folder, file, content_type),
            summary,
            auth=False,
            content_type=content_type,
            operation_id=operation_id,
            tag=tag,
        )
        for path, (file, content_type, operation_id, summary) in assets.items()
    ]
