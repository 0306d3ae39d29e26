"""The UDP listener's socket as the kernel keeps it: its receive buffer, and the datagrams the kernel dropped.

A datagram that arrives while the socket's receive buffer is full is dropped by the kernel before loglake reads
it, and no sender hears of it: 500 lines sent at once by `logger --udp` stored 256-283 of them behind Linux's
default buffer (212,992 bytes), and nothing said so. So the listener asks for RECEIVE_BUFFER_BYTES (the kernel
gives at most net.core.rmem_max, and a warning says how to raise it), and the kernel's count of the socket's
drops (the `drops` column of /proc/net/udp) is a metric. TCP and TLS lose nothing this way."""

from __future__ import annotations

import os
import socket
from pathlib import Path

# Asked for the UDP socket's receive buffer: some 30,000 datagrams of 250 bytes, a burst of seconds at the
# listener's rate limit.
RECEIVE_BUFFER_BYTES = 8 << 20
_PROC_TABLES = (Path("/proc/net/udp"), Path("/proc/net/udp6"))


def widen_receive_buffer(sock: socket.socket) -> str | None:
    """Ask for RECEIVE_BUFFER_BYTES; what to tell the operator when the kernel gives less (None: it gave it)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER_BYTES)
    given = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) // 2  # (Linux reports twice what it keeps)
    if given >= RECEIVE_BUFFER_BYTES:
        return None
    return (
        f"the syslog UDP listener's receive buffer is {given // 1024} KiB, not the {RECEIVE_BUFFER_BYTES >> 20} MiB "
        "asked (the kernel's net.core.rmem_max): datagrams of a burst beyond it are dropped by the kernel "
        "(loglake_syslog_udp_kernel_drops_total counts them). Raise it (sysctl -w net.core.rmem_max="
        f"{RECEIVE_BUFFER_BYTES}) and restart, or send over TCP, which loses nothing"
    )


def kernel_drops(sock: socket.socket) -> int | None:
    """The datagrams the kernel dropped for this socket (its buffer full) since it was made; None where the kernel
    does not say (no /proc/net/udp: not Linux)."""
    inode = str(os.fstat(sock.fileno()).st_ino)
    for table in _PROC_TABLES:
        try:
            lines = table.read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 12 and fields[9] == inode:
                return int(fields[-1])
    return None
