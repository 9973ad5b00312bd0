"""The browsable API reference at /docs: a small page of our own that renders
/openapi.json (operations by tag, parameters, schemas, webhooks) in the browser."""

from __future__ import annotations

from importlib import resources

from api.static import asset_routes

TAG = "Operations"
STATIC = resources.files(__package__)
ASSETS = {
    "/docs": ("index.html", "text/html", "getApiReference", "This API, browsable"),
    "/docs/docs.js": ("docs.js", "text/javascript", "getApiReferenceScript", "Its script"),
    "/docs/docs.css": ("docs.css", "text/css", "getApiReferenceStyle", "Its style sheet"),
}

ROUTES = asset_routes(STATIC, ASSETS, TAG)
