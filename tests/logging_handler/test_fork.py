"""A process forked after its LoglakeHandler was made (a pre-fork server's workers, multiprocessing's fork
start method) sends its own records, through a real `loglake serve`; what the parent had queued when it
forked is sent by the parent only."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.logging_handler.support import stored

FORKING = """
import logging, multiprocessing, os, sys
from loglake.logging import LoglakeHandler

handler = LoglakeHandler(sys.argv[1], api_key=sys.argv[2], service="forked", flush_interval=60)
logger = logging.getLogger("forked")
logger.addHandler(handler)
logger.setLevel(logging.INFO)
logger.info("parent, before the forks")  # still queued when they fork: nothing is sent for 60 s

def child():
    logger.info("multiprocessing child")
    flushed = handler.flush()  # (a multiprocessing child ends with os._exit: no atexit)
    print("child flushed", flushed, "sent", handler.sent, "dropped", handler.dropped, flush=True)

process = multiprocessing.get_context("fork").Process(target=child)
process.start()
process.join()
pid = os.fork()
if pid == 0:
    logger.info("os.fork child, sent at its exit")
    sys.exit(0)
os.waitpid(pid, 0)
logger.info("parent, after the forks")
flushed = handler.flush()
print("parent flushed", flushed, "sent", handler.sent, "dropped", handler.dropped, flush=True)
"""


def test_a_forked_child_sends_its_own_records_and_not_its_parents(server, key) -> None:
    """The new-user trial's case: the child's flush returned at once (the handler's thread is not copied
    by fork), its record was lost and nothing said so."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    ran = subprocess.run(
        [sys.executable, "-c", FORKING, server.url, key], env=env, capture_output=True, text=True, timeout=60
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.splitlines() == [
        "child flushed True sent 1 dropped 0",
        "parent flushed True sent 2 dropped 0",
    ]
    assert "loglake.logging" not in ran.stderr and "Traceback" not in ran.stderr, ran.stderr
    assert sorted(log["message"] for log in stored(server, key, "forked")) == [
        "multiprocessing child",
        "os.fork child, sent at its exit",
        "parent, after the forks",
        "parent, before the forks",
    ]
