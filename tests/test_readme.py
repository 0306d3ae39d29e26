"""The README's tables of defaults and limits say what the code does (the code is the one definition)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from loglake import arrivals, follow, shipping
from loglake.cli_options import SAY_AWAY_EVERY_S
from loglake.config import JSON_BODY_SIZE, Settings, env_name
from loglake.lake.search_terms import MAX_GROUP_DEPTH, MAX_TERMS
from loglake.model import MAX_PAGE_LIMIT, Limits

README = (Path(__file__).parents[1] / "README.md").read_text()
_UNITS = {"KiB": 1024, "MiB": 1024 * 1024}


def _section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end > 0 else None]


def _value(text: str) -> object:
    """A README default as a value: `300` -> 300, 10 MiB -> 10485760, 10,000 -> 10000, on -> True."""
    text = re.sub(r"\s*\(.*\)$", "", text.strip()).strip("`")
    if text in ("on", "off"):
        return text == "on"
    if text.startswith("empty"):
        return ""
    number = re.fullmatch(r"(-?\d[\d,]*(?:\.\d+)?)\s*(KiB|MiB)?", text)
    if number:
        value = float(number.group(1).replace(",", "")) * _UNITS.get(number.group(2) or "", 1)
        return int(value) if value.is_integer() else value
    return text


def _configuration_rows() -> list[tuple[str, str, object]]:
    rows = []
    for line in _section("Configuration").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 4 or not cells[0].startswith("`--"):
            continue
        flags = [f.strip("` ").split("/")[0] for f in cells[0].split(",")]
        defaults = [d for d in re.split(r",\s(?=\S)", cells[2])]
        if len(defaults) == len(flags):
            rows.extend((flag, cells[1], _value(default)) for flag, default in zip(flags, defaults, strict=True))
    return rows


def test_the_configuration_table_was_read() -> None:
    flags = {flag for flag, _, _ in _configuration_rows()}
    assert {"--data-dir", "--port", "--max-body-bytes", "--query-max-rows", "--rate-burst"} <= flags


@pytest.mark.parametrize(("flag", "environment", "default"), _configuration_rows())
def test_configuration_table_defaults_match_settings(flag: str, environment: str, default: object) -> None:
    name = flag.removeprefix("--").replace("-", "_")
    assert hasattr(Settings, name), f"the README names {flag}, which loglake serve does not have"
    actual = getattr(Settings(), name)
    assert (str(actual) if isinstance(actual, Path) else actual) == default
    if environment.endswith("`") and "..." not in environment:
        assert env_name(name) in environment


def test_record_table_states_the_enforced_limits() -> None:
    limits = Limits()
    record = " ".join(_section("The record").split())  # sentences wrap anywhere
    assert f"at most {limits.max_message_bytes // 1024} KiB of UTF-8" in record
    attributes = (
        f"at most {limits.max_attribute_keys} keys, nesting depth {limits.max_attribute_depth}, "
        f"{limits.max_attribute_bytes // 1024} KiB as JSON"
    )
    assert attributes in record
    assert f"at most {limits.max_future_ms // 3_600_000} h in the future" in record
    mib = Settings().max_body_bytes // (1024 * 1024)
    body = f"body over {mib} MiB after decompression, or over {limits.max_records:,} records"
    assert body in record
    assert f"over {JSON_BODY_SIZE} for the JSON APIs" in record


def test_send_says_it_skips_a_line_too_long_to_be_a_record() -> None:
    """The README said records were made to fit "without dropping anything", and not that a line over
    MAX_LINE_BYTES is skipped."""
    text = " ".join(README.split())
    mib = shipping.MAX_LINE_BYTES // (1024 * 1024)
    assert f"So is a line over {mib} MiB, which no record holds (`line N: not stored: the line is too long" in text


def test_recent_limit_range_is_the_enforced_one() -> None:
    assert f"`limit` (1-{MAX_PAGE_LIMIT}," in README.replace("\n", " ")


def test_follow_states_the_arrivals_kept() -> None:
    text = " ".join(README.split())
    kept = f"up to {arrivals.MAX_RECORDS:,} records or {arrivals.MAX_BYTES // (1024 * 1024)} MiB"
    assert kept in text
    assert f"nothing when nobody has followed for {arrivals.IDLE_SECONDS / 60:g} minutes" in text
    assert follow.RESTART_LOOKBACK_MS == 60_000 and "by time from a minute before" in text


def test_tail_and_follow_say_how_often_they_say_why_they_are_away() -> None:
    text = " ".join(README.split())
    assert text.count(f"once, then at most every {SAY_AWAY_EVERY_S:g} s") == 2  # recent --follow, tail


def test_the_rules_the_readme_commands_name_are_in_the_starter_pack() -> None:
    """The commands follow `loglake rules init`: a rule they name (by file name or the start of its id) is one
    the starter pack copies, or a reader's first try fails with "no rule"."""
    from loglake.rules.starter import starter_files

    starters = {file.name.rsplit(".", 1)[0]: file.read_text() for file in starter_files()}
    ids = [re.search(r"^id: (\S+)", text, re.MULTILINE).group(1) for text in starters.values()]
    named = re.findall(r"loglake rules (?:show|run|backtest) (\S+)", README)
    named += re.findall(r"loglake alerts \w+ .*--rule (\S+)", README)
    assert named
    for name in named:
        assert name in starters or any(rule_id.startswith(name) for rule_id in ids), name


def test_every_curl_example_uses_the_one_key_variable_and_address() -> None:
    """Copied one after another, the examples work with the key `loglake serve` told you to export."""
    commands = re.findall(r"^curl .*?(?<!\\)$", README, re.MULTILINE | re.DOTALL)
    assert commands
    for command in commands:
        assert "localhost" not in command, command
        keys = re.findall(r"Bearer (\S+?)[\"']", command)
        assert all(key == "$LOGLAKE_API_KEY" for key in keys), command


def test_what_the_readme_commands_write_in_the_working_folder_is_ignored_by_git() -> None:
    """Run as written in a checkout, the tour leaves nothing untracked behind."""
    ignored = set((Path(__file__).parents[1] / ".gitignore").read_text().split())
    written = {f"{name}/" for name in re.findall(r"--data-dir \./([\w.-]+)", README)}
    written |= set(re.findall(r"^[^#\n]*? > ([\w.-]+)\s*$", README, re.MULTILINE))  # a shell's redirect, not =>
    assert {"app.ndjson", "amplify-demo/", "loglake-data/"} <= written
    assert written <= ignored, written - ignored


def test_search_section_states_the_search_languages_limits() -> None:
    lake = " ".join(_section("The lake: a year of logs, one SQL").split())
    assert f"A search holds at most {MAX_TERMS} terms and groups nest at most {MAX_GROUP_DEPTH} deep" in lake


def _readme_placeholders() -> list[tuple[str, str]]:
    """Each upper-case word a README command line (`loglake COMMAND ... WORD`) puts where an argument goes, with the
    command it is given to; an option's value (`--config FILE`) is not one."""
    import click

    from loglake.cli import main

    found = []
    for line in re.findall(r"loglake [^`#\n]+", README):
        words, command, path = line.split()[1:], main, ["loglake"]
        while words and isinstance(command, click.Group) and words[0] in command.commands:
            command = command.commands[words[0]]
            path.append(words.pop(0))
        options = {name: p for p in command.params if isinstance(p, click.Option) for name in p.opts}
        while words:
            word = words.pop(0)
            if word in options and not options[word].is_flag:
                words[:1] = []  # its value
            elif re.fullmatch(r"\[?[A-Z][A-Z_-]+\]?(\.\.\.)?", word) and len(path) > 1:
                found.append((" ".join(path), word.strip("[].")))
            else:  # a value given (a search, SQL), or prose
                break
    return found


def test_the_readme_names_each_commands_arguments_as_its_help_does() -> None:
    """`loglake tail [SEARCH]` in the README was `[TERMS]...` in `loglake tail --help`."""
    import click

    from loglake.cli import main

    found = _readme_placeholders()
    assert {"loglake tail", "loglake alerts retry"} <= {path for path, _ in found}
    for path, word in found:
        command = main
        for name in path.split()[1:]:
            command = command.commands[name]
        arguments = [p.human_readable_name for p in command.params if isinstance(p, click.Argument)]
        assert word in arguments, f"`{path} {word}` in the README; --help says {arguments}"


def test_the_least_query_timeout_is_the_enforced_one() -> None:
    from loglake.lake.query_limits import MIN_TIMEOUT_SECONDS

    assert f"and no less than {MIN_TIMEOUT_SECONDS:g} s)" in " ".join(README.split())


def test_the_amplify_schedules_the_readme_names_are_the_accepted_ones() -> None:
    """It spoke of an hourly schedule, which the configuration refuses (daily or weekly)."""
    from loglake.amplify.config import FREQUENCIES

    section = " ".join(_section("Amplify Hosting access logs").split())
    assert f"`schedule.frequency` is `{FREQUENCIES[0]}` or `{FREQUENCIES[1]}`" in section
    named = set(re.findall(r"\b(hourly|daily|weekly|monthly)\b", section))
    assert named == set(FREQUENCIES), named
