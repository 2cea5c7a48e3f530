"""A threading HTTP server for the local stand-ins that can cut every open connection when it stops."""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class ClosableHTTPServer(ThreadingHTTPServer):
    """Keep-alive connections would otherwise hold stop() until each client hangs up."""

    daemon_threads = True
    request_queue_size = 128  # a burst of concurrent requests should not wait on SYN retries

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        # Tracked in the accept loop, not the handler thread, so no connection accepted before
        # shutdown() can escape close_connections().
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        # shutdown() rather than close(): the handler thread sees EOF and closes the socket it owns.
        with self._open_lock:
            open_now = list(self._open)
        for conn in open_now:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up, and connections cut by stop() or a reset fault, are part of the job.
        if not isinstance(sys.exception(), OSError):
            super().handle_error(request, client_address)
