"""A loopback HTTP file server for model download tests: serves byte strings by path, honours
``Range: bytes=N-`` (206 + Content-Range) unless told not to, and can cut a response short
after a number of bytes (the connection drops mid-body, as on a flaky network)."""

from __future__ import annotations

import http.server
import threading
import time
from dataclasses import dataclass, field


@dataclass
class Served:
    body: bytes
    ranges: bool = True  # honour Range requests
    cut_after: list[int] = field(default_factory=list)  # per request, drop after N body bytes
    chunk_delay_s: float = 0.0  # pause after each 64 KiB written (a slow link)


class FileServer:
    def __init__(self) -> None:
        self.files: dict[str, Served] = {}
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                rng = self.headers.get("Range")
                outer.requests.append((self.path, rng))
                served = outer.files.get(self.path)
                if served is None:
                    self._send(404, b"not found", {})
                    return
                body, start = served.body, 0
                headers: dict[str, str] = {}
                if rng and served.ranges and rng.startswith("bytes="):
                    start = int(rng[6:].split("-")[0])
                    if start >= len(body):
                        self._send(416, b"", {"Content-Range": f"bytes */{len(body)}"})
                        return
                    headers["Content-Range"] = f"bytes {start}-{len(body) - 1}/{len(body)}"
                code = 206 if "Content-Range" in headers else 200
                payload = body[start:]
                cut = served.cut_after.pop(0) if served.cut_after else None
                self.send_response(code)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self._write(payload if cut is None else payload[:cut], served.chunk_delay_s)
                if cut is not None:
                    self.close_connection = True
                    self.connection.shutdown(2)  # mid-body: the client sees a short read

            def _write(self, data: bytes, delay_s: float) -> None:
                step = 1 << 16 if delay_s else len(data) or 1
                for i in range(0, len(data), step):
                    self.wfile.write(data[i : i + step])
                    self.wfile.flush()
                    if delay_s:
                        time.sleep(delay_s)

            def _send(self, code: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(code)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FileServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
