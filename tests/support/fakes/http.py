"""Serve an in-memory fake on a real loopback port, for tests that run the daemon as a separate process."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol


class Handles(Protocol):
    def handle(self, method: str, path: str, query: str, headers: Any, body: bytes) -> Any: ...


@contextmanager
def serve(fake: Handles, lock: threading.Lock | None = None) -> Iterator[str]:
    """Yield the base URL of a threaded HTTP server that answers through `fake.handle` (one call at a time).

    An answer with a `delay` attribute is sent that many seconds late, without holding up other calls.
    `lock`: the caller's, held while it changes or reads the fake during serving.
    """
    lock = lock or threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            path, _, query = self.path.partition("?")
            with lock:
                result = fake.handle(self.command, path, query, dict(self.headers.items()), body)
            self.close_connection = True
            if getattr(result, "delay", 0):  # a hung server (tests.support.fakes.faults); the others go on meanwhile
                time.sleep(result.delay)
            status = getattr(result, "status", None)
            try:
                if status is None:  # a dropped answer: raw bytes without a status line, or nothing
                    if getattr(result, "raw", b""):
                        self.wfile.write(result.raw)
                    return
                self.send_response_only(status)
                for name, value in result.headers:
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(result.body)
            except OSError:  # the client gave up first (its timeout): nothing left to answer
                pass

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _any

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
