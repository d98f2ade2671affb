"""HTTP glue: a ThreadingHTTPServer on 127.0.0.1 that hands every request to Emulator.handle."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Iterator

if TYPE_CHECKING:
    from .core import Emulator


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like api.binance.com; clients reuse sessions
    server: _Server

    def version_string(self) -> str:
        return "binance-lake-emulator"

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        emu = self.server.emulator
        reply = emu.handle(self.command, self.path, headers, body)
        stop = self.server.stopping
        wait = emu.latency_s + reply.delay_s
        if wait and stop.wait(wait):
            self.close_connection = True
            return
        if reply.action == "reset":
            # RST instead of FIN: the client sees "connection reset" with no response at all
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            return
        self.send_response(reply.status)
        names = {k.lower() for k, _ in reply.headers}
        if "content-type" not in names:
            self.send_header("Content-Type", "application/json;charset=UTF-8")
        for k, v in reply.headers:
            self.send_header(k, v)
        body_out = reply.body
        if reply.action == "incomplete":
            # announce the full length, send half, hang up: an IncompleteRead on the client
            self.send_header("Content-Length", str(len(body_out)))
            body_out = body_out[: len(body_out) // 2]
            self.close_connection = True
        else:
            self.send_header("Content-Length", str(len(body_out)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body_out)

    def _safe(self) -> None:
        try:
            self._serve()
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (e.g. its timeout)
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _safe

    def log_message(self, format: str, *args: object) -> None:
        # Silent on purpose: request lines are recorded in Emulator.requests instead, and
        # nothing here may ever print headers (the API key travels in one).
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # stop() must not wait for a handler stalled by a "timeout" fault
    allow_reuse_address = True

    def __init__(self, emulator: Emulator, host: str, port: int) -> None:
        super().__init__((host, port), _Handler)
        self.emulator = emulator
        self.stopping = threading.Event()


class EmulatorServer:
    def __init__(self, emulator: Emulator, host: str = "127.0.0.1", port: int = 0) -> None:
        self._httpd = _Server(emulator, host, port)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="binance-emulator", daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else host  # typeshed allows bytes
        return f"http://{host}:{port}"

    def start(self) -> str:
        self._thread.start()
        return self.base_url

    def stop(self) -> None:
        self._httpd.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


@contextlib.contextmanager
def serve(emulator: Emulator, port: int = 0, host: str = "127.0.0.1") -> Iterator[str]:
    emulator.start(port, host)
    try:
        yield emulator._server.base_url
    finally:
        emulator.stop()
