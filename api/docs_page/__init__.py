"""The browsable API reference at /docs: a small page of our own that renders
/openapi.json (operations by tag, parameters, schemas, webhooks) in the browser."""

from __future__ import annotations

from importlib import resources

from api.routing import Route
from api.static import asset_handler

TAG = "Operations"
STATIC = resources.files(__package__)
ASSETS = {
    "/docs": ("index.html", "text/html", "getApiReference", "This API, browsable"),
    "/docs/docs.js": ("docs.js", "text/javascript", "getApiReferenceScript", "Its script"),
    "/docs/docs.css": ("docs.css", "text/css", "getApiReferenceStyle", "Its style sheet"),
}

ROUTES = [
    Route(
        "GET",
        path,
        asset_handler(STATIC, file, content_type),
        summary,
        auth=False,
        content_type=content_type,
        operation_id=operation_id,
        tag=TAG,
    )
    for path, (file, content_type, operation_id, summary) in ASSETS.items()
]
