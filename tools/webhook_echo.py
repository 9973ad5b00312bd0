#!/usr/bin/env python3
"""Print every webhook callbackd POSTs to it, to watch them while trying callbackd out:
`python3 tools/webhook_echo.py [PORT]` (default 9000), then give tasks URLs such as
http://127.0.0.1:9000/hooks/after. Answers 204 to everything; standard library only."""

from __future__ import annotations

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Echo(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        hook = {name: self.headers[name] for name in self.headers if name.startswith("webhook-")}
        print(f"POST {self.path} {json.dumps(hook)}\n{body.decode(errors='replace')}", flush=True)
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the webhook itself is what gets printed."""


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 9000
    print(f"printing webhooks POSTed to http://127.0.0.1:{port}/", flush=True)
    ThreadingHTTPServer(("127.0.0.1", port), Echo).serve_forever()
