"""An HTTP server that answers ``ListProjects`` from pages encoded in memory beforehand.

It costs next to nothing per page, so a listing against it times the client alone: what
the sandbox's own work would hide. Any bearer token is accepted; the page token is the
offset of the page, base64-encoded as the gateway's bytes tokens are.
"""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from mlops_nb.api import API

__all__ = ["PageServer"]

PATH = API.method("storage.project.list_projects").full_path


def _project(i: int) -> dict[str, Any]:
    created = f"2024-01-01T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}.{i % 1_000_000:06d}Z"
    project = {"id": f"00000000-0000-4000-8000-{i:012d}", "displayName": f"project {i}",
               "ownerId": "00000000-0000-4000-8000-00000000a11c", "createdTime": created,
               "lastModifiedTime": created}
    if i % 3 == 0:
        project["description"] = f"benchmark project number {i}"
    return project


class PageServer:
    """``with PageServer(20_000) as server:`` serves that many projects at ``server.url``."""

    def __init__(self, projects: int, page_size: int = 1000) -> None:
        self.page_size = page_size
        self.pages: list[bytes] = []
        for start in range(0, projects, page_size):
            body: dict[str, Any] = {"project": [_project(i) for i in range(start, min(start + page_size, projects))],
                                    "userProjectCount": str(projects)}
            if start + page_size < projects:
                body["paging"] = {"nextPageToken": base64.b64encode(str(start + page_size).encode()).decode()}
            self.pages.append(json.dumps(body).encode())
        self._server: ThreadingHTTPServer | None = None
        self.url = ""

    def __enter__(self) -> PageServer:
        pages, page_size = self.pages, self.page_size

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the gateway

            def do_POST(self) -> None:  # noqa: N802 (the http.server API)
                request = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)) or b"{}")
                token = (request.get("paging") or {}).get("pageToken") or ""
                offset = int(base64.b64decode(token)) if token else 0
                body = pages[offset // page_size] if self.path == PATH else b'{"code": 12, "message": "no"}'
                self.send_response(200 if self.path == PATH else 501)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, name="page-server", daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
