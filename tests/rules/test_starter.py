"""The starter pack loads without a problem or a warning and its own tests pass; and the README's example rules do
what the README says."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from loglake.amplify.reports import BOT_PATTERN
from loglake.rules.loader import load_rules
from loglake.rules.starter import starter_folder
from loglake.rules.testing import run_tests

README = (Path(__file__).parents[2] / "README.md").read_text()


def test_the_starter_pack_loads_without_warnings_and_passes_its_tests() -> None:
    found = load_rules(starter_folder())
    assert found.problems == []
    assert [str(w) for r in found.rules for w in r.warnings] == []  # `loglake rules validate` says nothing of them
    assert len(found.rules) == 12
    assert {r.kind for r in found.rules} == {"sigma", "sigma correlation", "sql", "anomaly"}
    assert {t.name for r in found.rules for t in r.tests}  # every rule has tests, that fire and that do not:
    assert all({t.match for t in r.tests} == {True, False} for r in found.rules)
    outcomes = run_tests(found.rules)
    assert [(o.rule.title, o.test.name, o.failures) for o in outcomes if not o.passed] == []
    assert len(outcomes) == sum(len(r.tests) for r in found.rules)


def test_the_bot_rule_counts_bots_as_the_report_does() -> None:
    """The rule holds its own copy of the report's pattern (an operator may change it): the same at first."""
    rule = yaml.safe_load((starter_folder() / "amplify-bot-share-surge.yml").read_text())
    assert f"'{BOT_PATTERN}'" in rule["query"]


def _readme_rules() -> list[str]:
    start = README.index("\n## Detection rules\n")
    section = README[start : README.index("\n## ", start + 1)]
    return re.findall(r"```yaml\n(.*?)```", section, re.DOTALL)


def test_the_readme_rules_load_and_pass_their_tests(tmp_path: Path) -> None:
    texts = _readme_rules()
    assert len(texts) == 3
    for i, text in enumerate(texts):
        (tmp_path / f"readme-{i}.yml").write_text(text)
    found = load_rules(tmp_path)
    assert found.problems == [] and len(found.rules) == 3
    outcomes = run_tests(found.rules)
    assert [o.test.name for o in outcomes if o.passed] == ["five errors fire", "four do not"]
