"""What goes wrong when asking, as the edges answer it, apart from the parts that raise it: a server
loads the models' clients and sqlglot (~15 MiB) only when someone first asks."""

from __future__ import annotations

MAX_QUESTION_CHARS = 2000


class AskError(Exception):
    """A question that cannot be asked as it is (HTTP 400): the message says what to change."""


class NoProvider(Exception):
    """`ask` is off: no llm_provider is configured. The message says how to turn it on."""


class ProviderError(Exception):
    """The model gave no usable answer: `status` 502 (it answered with an error or nonsense) or 503
    (it did not answer in time, was unreachable or overloaded: retry later)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class AnswerRefused(Exception):
    """Every answer of the model was refused (`attempts` of them); `reason` is the last refusal's."""

    def __init__(self, reason: str, sql: str | None, attempts: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.sql = sql
        self.attempts = attempts


class BudgetExhausted(Exception):
    """The provider's tokens for today are spent (HTTP 429 until the next UTC day)."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
