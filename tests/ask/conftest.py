"""Fixtures of the ask tests: the local language-model server."""

from tests.ask.model_server import model_server  # noqa: F401
