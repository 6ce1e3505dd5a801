"""A small capturing HTTP server on 127.0.0.1 for wire tests.

It records every request (verb, path, query, headers, body) and answers from a
table of canned responses, so that tests can check exactly what a client sends
without any MLOps server. Used by the wire tests and the legacy-client
comparison (which runs the official client in another process against it).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit


@dataclass
class Captured:
    verb: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def ndjson(self) -> list[Any]:
        return [json.loads(line) for line in self.body.splitlines() if line.strip()]


@dataclass
class Canned:
    status: int = 200
    body: bytes = b"{}"
    content_type: str = "application/json"
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class CaptureServer:
    """``with CaptureServer() as server: ... server.url ... server.requests``."""

    requests: list[Captured] = field(default_factory=list)
    responses: dict[str, Canned] = field(default_factory=dict)  # path -> canned answer
    default: Canned = field(default_factory=Canned)

    def respond(self, path: str, body: Any = None, *, status: int = 200, raw: bytes | None = None,
                content_type: str = "application/json", delay: float = 0.0,
                headers: dict[str, str] | None = None) -> None:
        data = raw if raw is not None else json.dumps(body if body is not None else {}).encode()
        self.responses[path] = Canned(status, data, content_type, delay, dict(headers or {}))

    def __enter__(self) -> CaptureServer:
        capture = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _read_body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().strip() or b"0", 16)
                        if size == 0:
                            self.rfile.readline()
                            break
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                    return b"".join(chunks)
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _handle(self) -> None:
                url = urlsplit(self.path)
                body = self._read_body()
                capture.requests.append(Captured(self.command, url.path, parse_qsl(url.query),
                                                 {k.lower(): v for k, v in self.headers.items()}, body))
                canned = capture.responses.get(url.path, capture.default)
                if canned.delay:
                    threading.Event().wait(canned.delay)
                try:
                    self.send_response(canned.status)
                    self.send_header("Content-Type", canned.content_type)
                    self.send_header("Content-Length", str(len(canned.body)))
                    for name, value in canned.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(canned.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up first (the timeout tests do that on purpose)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
