"""One HTTP call that a deadline or a stop can end at once: httpx's timeout bounds each wait for a byte, not the
call, so a server that sends a byte now and then (or an endless answer) would hold the call, and its thread, for
ever. The call's connection is shut from another thread (a threading.Timer at the deadline, or a stop), which
ends its blocked read at once; the client must keep no connection between calls (`max_keepalive_connections=0`),
since the socket is learnt when a call connects."""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Any


class Connection:
    """The connection of one call, pass `trace` as the request's `trace` extension; `shut` ends the call (httpx
    raises), where closing the client from another thread would leave it waiting for the server."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None
        self._stopped = False
        self.timed_out = False

    def trace(self, event: str, info: dict[str, Any]) -> None:
        """httpx's trace hook: the connection's socket once it is made (the TLS one once it is wrapped)."""
        if event in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            with self._lock:
                self._socket = info["return_value"].get_extra_info("socket")
                stopped = self._stopped
            if stopped:  # told to stop while connecting
                self.shut()

    def time_out(self) -> None:
        """The call's time is up: shut it, saying so."""
        self.timed_out = True
        self.shut()

    def shut(self) -> None:
        with self._lock:
            self._stopped = True
            sock = self._socket
        if sock is not None:
            with contextlib.suppress(OSError):  # closed already: the call has ended
                # socket.socket's own shutdown, also for a TLS socket: SSLSocket's would drop its TLS
                # state under the thread that is reading from it.
                socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def deadline(self, seconds: float) -> threading.Timer:
        """A timer that times the call out after `seconds`: start it before the call, cancel it after."""
        timer = threading.Timer(seconds, self.time_out)
        timer.daemon = True
        return timer
