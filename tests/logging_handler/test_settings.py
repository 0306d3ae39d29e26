"""LoglakeHandler's settings: one it cannot work with is a ValueError at construction that names it and
says what it takes, and a handler whose construction raised leaves logging's shutdown at exit quiet."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys

import pytest
from botocore.credentials import Credentials

from loglake.logging import LoglakeHandler

WHOLE_BATCH = "must be a whole number from 1 to 10000 (the most records a server takes in a request)"
URL = "must be http:// or https:// and a host, like http://127.0.0.1:8080"
CREDENTIALS = "credentials %s must be botocore Credentials, like boto3.Session().get_credentials(), or None for those"
CREDENTIALS += " botocore finds"
# (credentials without a region were not used at all: requests went unsigned, and the 401 said to check api_key)
NO_REGION = "credentials are for AWS SigV4 signing: give sigv4_region too, like sigv4_region='us-east-1'"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"batch_size": 0}, f"batch_size 0 {WHOLE_BATCH}"),
        ({"batch_size": 10_001}, f"batch_size 10001 {WHOLE_BATCH}"),
        ({"batch_size": 2.5}, f"batch_size 2.5 {WHOLE_BATCH}"),
        ({"batch_size": True}, f"batch_size True {WHOLE_BATCH}"),
        ({"batch_size": "100"}, f"batch_size '100' {WHOLE_BATCH}"),
        ({"queue_size": 0}, "queue_size 0 must be a whole number from 1"),
        ({"flush_interval": 0}, "flush_interval 0 must be a number of seconds above 0"),
        ({"flush_interval": math.nan}, "flush_interval nan must be a number of seconds above 0"),
        ({"flush_interval": "1"}, "flush_interval '1' must be a number of seconds above 0"),
        ({"flush_timeout": -1}, "flush_timeout -1 must be a number of seconds from 0"),
        ({"flush_timeout": math.inf}, "flush_timeout inf must be a number of seconds from 0"),
        ({"timeout": 0}, "timeout 0 must be a number of seconds above 0"),
        ({"timeout": None}, "timeout None must be a number of seconds above 0"),
        ({"url": "ftp://x"}, f"url 'ftp://x' {URL}"),
        ({"url": "127.0.0.1:8080"}, f"url '127.0.0.1:8080' {URL}"),
        ({"url": "http://"}, f"url 'http://' {URL}"),
        ({"url": "http://my host"}, f"url 'http://my host' {URL}"),
        ({"sigv4_region": "us-east-1", "credentials": {"access_key": "AKIA", "secret_key": "x"}}, CREDENTIALS % "dict"),
        ({"sigv4_region": "us-east-1", "credentials": ("AKIA", "x")}, CREDENTIALS % "tuple"),
        ({"credentials": Credentials("AKIA", "x")}, NO_REGION),
    ],
)
def test_a_setting_the_handler_cannot_work_with_is_refused_at_construction(options, message) -> None:
    """The new-user trial's cases: batch_size=0 and an ftp:// url were taken, and failed only at exit (as credentials
    that are no botocore Credentials did, each attempt failing)."""
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        LoglakeHandler(**{"url": "http://127.0.0.1:9", "api_key": "llk_x"} | options)


def test_the_url_from_the_environment_is_named_so(monkeypatch) -> None:
    monkeypatch.setenv("LOGLAKE_URL", "localhost:8080")
    message = f"url (LOGLAKE_URL) 'localhost:8080' {URL}"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        LoglakeHandler(api_key="llk_x")


def test_the_service_from_the_environment_is_named_so(monkeypatch) -> None:
    monkeypatch.setenv("LOGLAKE_SERVICE", "bad name")
    message = "service (LOGLAKE_SERVICE) 'bad name' must be 1-128 of A-Z a-z 0-9 . _ -"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        LoglakeHandler("http://127.0.0.1:9", "llk_x")


@pytest.mark.parametrize(
    ("api_key", "holds"),
    [("llk_abcd…", "HORIZONTAL ELLIPSIS at character 9"), ("llk_ab\x01cd", "U+0001 at character 7")],
)
def test_a_key_holding_what_no_key_holds_is_refused_without_quoting_it(api_key: str, holds: str) -> None:
    """A hint pasted from `keys list` (its `…`) raised a UnicodeEncodeError on the sender's thread; a control
    character was sent, refused, and quoted with the whole key in the line said at exit."""
    with pytest.raises(ValueError, match=f"^the API key holds {re.escape(holds)}, which no key holds") as raised:
        LoglakeHandler("http://127.0.0.1:9", api_key)
    assert "abcd" not in str(raised.value) and "ab\x01" not in str(raised.value)


def test_a_key_given_with_its_bearer_word_says_to_give_the_key_alone() -> None:
    """LOGLAKE_API_KEY="Bearer llk_..." (copied from a curl line) said it held SPACE at character 7."""
    with pytest.raises(ValueError, match=r"^the API key starts with `Bearer `: give the key alone"):
        LoglakeHandler("http://127.0.0.1:9", "Bearer llk_abcd")


def test_the_bounds_themselves_are_taken() -> None:
    for options in ({"batch_size": 10_000, "flush_timeout": 0}, {"batch_size": 1, "queue_size": 1, "timeout": 0.5}):
        handler = LoglakeHandler("https://logs.example.invalid/prefix/", "llk_x", flush_interval=0.01, **options)
        handler.close()
        assert handler.url == "https://logs.example.invalid/prefix"


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ("service='no spaces'", "ValueError: service 'no spaces' must be 1-128 of A-Z a-z 0-9 . _ -"),
        ("sigv4_region='us-east-1'", "ValueError: sigv4_region is set but botocore finds no AWS credentials"),
    ],
)
def test_a_handler_whose_construction_raised_leaves_the_exit_quiet(arguments, error) -> None:
    """The new-user trial's case: logging's shutdown, at exit, flushes and closes every handler that got as
    far as logging.Handler.__init__, and a half-built one added an AttributeError to the program's own error."""
    script = f"from loglake.logging import LoglakeHandler\nLoglakeHandler('http://127.0.0.1:9', {arguments})\n"
    env = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    env |= {"AWS_SHARED_CREDENTIALS_FILE": "/nonexistent", "AWS_CONFIG_FILE": "/nonexistent"}
    env |= {"AWS_EC2_METADATA_DISABLED": "true", "PYTHONPATH": os.pathsep.join(sys.path)}
    ran = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert ran.returncode == 1
    assert ran.stderr.rstrip().splitlines()[-1].startswith(error), ran.stderr
    assert "AttributeError" not in ran.stderr and "atexit" not in ran.stderr, ran.stderr
