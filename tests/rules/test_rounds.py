"""A round of rules run with one shared scan answers exactly what each rule's own run answers: the
starter pack and rules with groups, thresholds and correlations, over records in the lake's files and
in the hot store; rules that read further back run on their own."""

from __future__ import annotations

from pathlib import Path

from loglake.lake.lake import Lake
from loglake.rules.loader import load_rules
from loglake.rules.rounds import SHARED_SPAN_MS, Run, run_round
from loglake.rules.run import run_rule
from loglake.rules.starter import starter_folder
from tests.rules.conftest import load_one
from tests.rules.test_backtest import DAY2, DAY3, HOUR, MINUTE, SLIDING, random_lake  # noqa: F401

BY_USER = SLIDING.replace("lookback: 35m", "lookback: 10m").replace(
    "77777777-8888-4999-8aaa-dddddddddddd", "77777777-8888-4999-8aaa-eeeeeeeeeeee"
)


def test_a_shared_round_answers_what_each_rule_answers(random_lake: Lake, tmp_path: Path) -> None:  # noqa: F811
    rules = [
        *load_rules(starter_folder()).rules,
        load_one(tmp_path, BY_USER),
        load_one(tmp_path, SLIDING, "sliding.yml"),
    ]
    shared_kinds = set()
    matched = 0
    for until in [DAY2 + h * HOUR + m * MINUTE for h in (3, 9, 17, 23) for m in (0, 25)] + [DAY3 + 2 * HOUR]:
        round_ = run_round([Run(r, until - r.lookback_ms, until) for r in rules], random_lake.engine, now_ms=until)
        assert round_.shared_rules == sum(
            r.lookback_ms + r.plan.reach_ms <= SHARED_SPAN_MS and r.plan.tables[0].name == "logs" for r in rules
        )
        for rule in rules:
            alone = run_rule(rule, random_lake.engine, until - rule.lookback_ms, until, now_ms=until)
            together = round_.results[rule.id]
            assert not isinstance(together, Exception), together
            assert [m.to_dict() for m in together.matches] == [m.to_dict() for m in alone.matches], rule.path
            matched += len(alone.matches)
        shared_kinds |= {r.kind for r in rules if r.lookback_ms + r.plan.reach_ms <= SHARED_SPAN_MS}
    assert matched > 10 and {"sigma", "sigma correlation"} <= shared_kinds  # the data exercised it
