"""The syslog UDP listener's socket as the kernel keeps it: a bigger receive buffer asked for (and a warning when
the kernel gives less), and the datagrams the kernel dropped counted, on real sockets."""

from __future__ import annotations

import dataclasses
import socket
from pathlib import Path

import pytest

from loglake.api.app import LoglakeApp
from loglake.config import Settings
from loglake.protocols.syslog_udp import RECEIVE_BUFFER_BYTES, kernel_drops, widen_receive_buffer
from tests.conftest import asgi_client, key_for
from tests.protocols.test_syslog_listeners import free_udp_port


def test_the_kernels_drops_of_a_full_receive_buffer_are_counted() -> None:
    """500 datagrams sent at once by `logger --udp` stored 256-283 of them, and nothing said so (a new-user trial):
    the kernel dropped the rest, its buffer full, before loglake read any."""
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as listener,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender,
    ):
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # (the kernel's smallest: a few datagrams)
        listener.bind(("127.0.0.1", 0))
        assert kernel_drops(listener) == 0
        for i in range(200):
            sender.sendto(b"<14>1 - h a - - - datagram %d " % i + b"x" * 500, listener.getsockname())
        listener.setblocking(False)
        read = 0
        while True:
            try:
                listener.recv(2048)
            except BlockingIOError:
                break
            read += 1
        assert 0 < read < 200
        assert kernel_drops(listener) == 200 - read


def test_the_listener_asks_for_a_big_receive_buffer_and_says_when_the_kernel_gives_less() -> None:
    most = int(Path("/proc/sys/net/core/rmem_max").read_text())
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        said = widen_receive_buffer(sock)
        given = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) // 2
    assert given >= min(most, RECEIVE_BUFFER_BYTES)
    if most < RECEIVE_BUFFER_BYTES:
        assert said is not None and "net.core.rmem_max" in said and "TCP" in said
    else:
        assert said is None


@pytest.mark.parametrize("udp", [True, False])
async def test_metrics_count_the_kernels_drops_where_there_is_a_udp_listener(settings: Settings, udp: bool) -> None:
    port = free_udp_port()
    settings = dataclasses.replace(settings, syslog_udp=f"127.0.0.1:{port}" if udp else "")
    app = LoglakeApp.from_settings(settings)
    try:
        if app.runtime.syslog is not None:
            app.runtime.syslog.start()
        async with asgi_client(app, key_for(app, "read")) as client:
            metrics = (await client.get("/metrics")).text
        assert ("loglake_syslog_udp_kernel_drops_total 0" in metrics) is udp
    finally:
        if app.runtime.syslog is not None:
            app.runtime.syslog.stop()
        app.close()
