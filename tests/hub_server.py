"""A real HTTP server on 127.0.0.1 for the hub tests: serves files the tests write, with scripted faults.

Each path can be given a list of faults consumed one per request:
``"truncate"`` (send the headers of the full file, half the bytes, then close), ``"500"``, ``"stall"``
(wait longer than the client's read timeout before answering). ``ignore_range`` makes the server
answer every request with the whole file (200), as some servers do.
"""
from __future__ import annotations

import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        # a client that gave up (read timeout, a killed download) leaves a broken pipe: expected here
        import sys
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class FileServer:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.faults: dict[str, list[str]] = {}
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, Range header)
        self.ignore_range = False
        self.delay = 0.0          # seconds before every answer (to make concurrent clients overlap)
        self.stall_seconds = 2.0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):
                server._handle(self)

        self.httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def add(self, path: str, data: bytes, faults: list[str] | None = None) -> str:
        self.files[path] = data
        self.faults[path] = list(faults or [])
        return self.url + path

    def gets(self, path: str) -> int:
        return sum(1 for m, p, _ in self.requests if p == path)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        path = h.path.split("?", 1)[0]
        rng = h.headers.get("Range")
        with self._lock:
            self.requests.append(("GET", path, rng))
            fault = self.faults.get(path, []).pop(0) if self.faults.get(path) else None
        if self.delay:
            time.sleep(self.delay)
        if fault == "stall":
            time.sleep(self.stall_seconds)
        if fault == "500" or path not in self.files:
            code = 500 if fault == "500" else 404
            body = b"error"
            h.send_response(code)
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)
            return
        data = self.files[path]
        start = 0
        m = re.fullmatch(r"bytes=(\d+)-", rng or "")
        if m and not self.ignore_range:
            start = int(m.group(1))
            if start >= len(data):
                h.send_response(416)
                h.send_header("Content-Length", "0")
                h.end_headers()
                return
            h.send_response(206)
            h.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            h.send_response(200)
        body = data[start:]
        h.send_header("Content-Length", str(len(body)))
        h.send_header("Accept-Ranges", "bytes")
        h.end_headers()
        if fault == "truncate":
            h.wfile.write(body[: len(body) // 2])
            h.wfile.flush()
            h.close_connection = True
            return
        h.wfile.write(body)
