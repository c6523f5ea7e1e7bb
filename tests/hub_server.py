"""A real HTTP server on 127.0.0.1 for the hub tests: serves files the tests write, with scripted faults.

Each path can be given a list of faults consumed one per request:

* ``"truncate"``: the headers of the full answer, half the bytes, then close;
* ``"truncate+change"``: the same, then the file is replaced by its next version (``add(..., versions=)``),
  as when a server publishes a new file between a broken transfer and its resume;
* ``"500"``; ``"stall"`` (wait longer than the client's read timeout before answering);
* ``"gzip"``: the body gzip-compressed with ``Content-Encoding: gzip`` whatever the client asked for;
* ``"huge_length"``: ``Content-Length: 10**13``, then the real bytes, then close;
* ``"endless"``: no Content-Length, bytes until the client gives up (close-delimited body);
* ``"drip"``: the real file, ``drip_bytes`` every ``drip_interval`` seconds (each read well within the timeout);
* ``"html"``: an HTML error page with status 200.

Every file has a strong ``ETag`` and a ``Last-Modified`` that change with its content (``validators=False``
sends neither), and ``Range`` with ``If-Range`` is answered as RFC 9110 says: 206 when the validator
matches, the whole current file (200) otherwise. ``ignore_range`` answers every request with the whole
file; ``ignore_if_range`` resumes even when the validator does not match (a broken server).
``redirect(path, location)`` answers ``path`` with a 302 to ``location``.
"""
from __future__ import annotations

import email.utils
import gzip
import hashlib
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
        self.versions: dict[str, list[bytes]] = {}
        self.modified: dict[str, float] = {}
        self.faults: dict[str, list[str]] = {}
        self.redirects: dict[str, str] = {}
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, Range header)
        self.headers: list[dict[str, str]] = []                # every request's headers, in order
        self.ignore_range = False
        self.ignore_if_range = False
        self.validators = True
        self.content_type = "application/octet-stream"
        self.delay = 0.0          # seconds before every answer (to make concurrent clients overlap)
        self.stall_seconds = 2.0
        self.drip_bytes = 1024
        self.drip_interval = 0.05
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

    def add(self, path: str, data: bytes, faults: list[str] | None = None, versions: list[bytes] | None = None) -> str:
        self.files[path] = data
        self.versions[path] = list(versions or [])
        self.modified[path] = 1_600_000_000.0 + len(self.modified)
        self.faults[path] = list(faults or [])
        return self.url + path

    def replace(self, path: str, data: bytes) -> None:
        """Publish new content under ``path`` (new ETag and Last-Modified)."""
        with self._lock:
            self.files[path] = data
            self.modified[path] += 3600.0

    def redirect(self, path: str, location: str) -> str:
        self.redirects[path] = location
        return self.url + path

    def gets(self, path: str) -> int:
        return sum(1 for m, p, _ in self.requests if p == path)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _validators(self, path: str) -> tuple[str, str]:
        etag = '"' + hashlib.sha256(self.files[path]).hexdigest()[:16] + '"'
        return etag, email.utils.formatdate(self.modified[path], usegmt=True)

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        path = h.path.split("?", 1)[0]
        rng = h.headers.get("Range")
        with self._lock:
            self.requests.append(("GET", path, rng))
            self.headers.append(dict(h.headers.items()))
            fault = self.faults.get(path, []).pop(0) if self.faults.get(path) else None
        if self.delay:
            time.sleep(self.delay)
        if path in self.redirects:
            h.send_response(302)
            h.send_header("Location", self.redirects[path])
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
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
        if fault == "html":
            body = b"<!DOCTYPE html><html><body><h1>Service temporarily unavailable</h1></body></html>"
            h.send_response(200)
            h.send_header("Content-Type", "text/html; charset=utf-8")
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)
            return
        with self._lock:
            data = self.files[path]
            etag, modified = self._validators(path)
        start = 0
        m = re.fullmatch(r"bytes=(\d+)-", rng or "")
        if_range = h.headers.get("If-Range")
        fresh = if_range is None or if_range in (etag, modified) or self.ignore_if_range
        if m and not self.ignore_range and fresh:
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
        h.send_header("Content-Type", self.content_type)
        h.send_header("Accept-Ranges", "bytes")
        if self.validators:
            h.send_header("ETag", etag)
            h.send_header("Last-Modified", modified)
        if fault == "gzip":
            body = gzip.compress(body)
            h.send_header("Content-Encoding", "gzip")
        if fault == "endless":
            h.send_header("Connection", "close")
            h.end_headers()
            h.close_connection = True
            block = b"\0" * 65536
            while True:  # until the client hangs up (BrokenPipe ends this thread)
                h.wfile.write(block)
        h.send_header("Content-Length", str(10 ** 13 if fault == "huge_length" else len(body)))
        h.end_headers()
        if fault in ("truncate", "truncate+change"):
            h.wfile.write(body[: len(body) // 2])
            h.wfile.flush()
            h.close_connection = True
            if fault == "truncate+change" and self.versions.get(path):
                self.replace(path, self.versions[path].pop(0))
            return
        if fault == "drip":
            for i in range(0, len(body), self.drip_bytes):
                h.wfile.write(body[i:i + self.drip_bytes])
                h.wfile.flush()
                time.sleep(self.drip_interval)
            return
        h.wfile.write(body)
        if fault == "huge_length":
            h.wfile.flush()
            h.close_connection = True
