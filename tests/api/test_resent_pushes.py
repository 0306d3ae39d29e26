"""ResentPushes: the answers of stored pushes, kept for a window, by fingerprint; an injected clock."""

from __future__ import annotations

from loglake.api import resent_pushes
from loglake.api.resent_pushes import ResentPushes, fingerprint


async def test_a_stored_push_is_answered_again_until_the_window_ends() -> None:
    now = [1000.0]
    pushes: ResentPushes[str] = ResentPushes(lambda: now[0])
    calls: list[str] = []

    async def store(answer: str, stored: bool = True):
        calls.append(answer)
        return answer, stored

    key = fingerprint(b"application/x-protobuf", b"push")
    assert await pushes.once(key, lambda: store("first")) == ("first", True)
    now[0] += resent_pushes.WINDOW_SECONDS - 1
    assert await pushes.once(key, lambda: store("second")) == ("first", False)
    now[0] += 1
    assert await pushes.once(key, lambda: store("third")) == ("third", True)  # the window is over
    assert calls == ["first", "third"]


async def test_a_push_that_stored_nothing_is_not_kept() -> None:
    pushes: ResentPushes[str] = ResentPushes(lambda: 0.0)
    key = fingerprint(b"application/json", b"{}")

    async def nothing():
        return "refused", False

    assert await pushes.once(key, nothing) == ("refused", True)
    assert pushes.answered(key) is None


def test_the_fingerprint_tells_the_encoding_apart() -> None:
    assert fingerprint(b"application/json", b"x") != fingerprint(b"application/x-protobuf", b"x")


async def test_at_most_most_answers_are_kept() -> None:
    pushes: ResentPushes[int] = ResentPushes(lambda: 0.0, most=2)
    for n in range(3):

        async def store(n: int = n):
            return n, True

        await pushes.once(bytes([n]), store)
    assert [pushes.answered(bytes([n])) for n in range(3)] == [None, 1, 2]  # the oldest went first
