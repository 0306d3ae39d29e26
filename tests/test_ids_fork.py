"""Ids in a forked child: not its parent's (a forked process copies the parent's node number and counter)."""

from __future__ import annotations

import os

from loglake import ids


def test_a_forked_child_and_its_parent_give_different_ids_for_the_same_millisecond() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its ids for the millisecond, to the parent
        try:
            os.write(write, b"".join(ids.uuid7_many([1_700_000_000_000] * 3)))
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as got:
        child = got.read()
    os.waitpid(pid, 0)
    parent = ids.uuid7_many([1_700_000_000_000] * 3)
    child_ids = [child[i : i + 16] for i in range(0, len(child), 16)]
    assert len(child_ids) == 3
    assert not set(child_ids) & set(parent)
    assert {ids.split_id(i)[1] & 0xFFFFFFFF for i in child_ids} != {ids.split_id(i)[1] & 0xFFFFFFFF for i in parent}
