"""A rule's SQL in Athena's dialect (Trino): the one conversion of plan.py, written for another engine.

A rule's plan is DuckDB SQL with the window as parameters (`$since`, `$until`, `$read_since`). For
Athena the same tree is rewritten with sqlglot:

- times become `CAST('2026-05-04 00:00:00.000' AS TIMESTAMP)` and the window's days `'2026-05-04'`
  (athena_template leaves marks there, bundle.fill_window writes each run's window in);
- the `date` partition is text on AWS (the Glue tables' projection), so it is compared with text: the
  window's days, or other dates (a baseline's earlier days) cast to text. The lookback stays a
  partition predicate: Athena lists only those days;
- a regular expression's `$` (outside `(?m)`) as `\\z`: RE2 (DuckDB) reads it as the end of the text, where
  Trino's regexes (Joni, with Java's syntax) read it as Java does, the end or before a newline that ends the
  text, so `failed$` matched `login failed\\n` on Athena only (`^` is the start alike);
- what Trino lacks is written with what it has: QUALIFY as a filtered subquery, `count(DISTINCT x)`
  over a window as the size of the distinct array of its values, `contains` and `ends_with` on text
  as `strpos` and `substr`, `any_value` as `arbitrary`, intervals in milliseconds as seconds, JSON
  values read with `try` (attributes that are not JSON match nothing, as locally) as DuckDB reads them (an object
  or array as its JSON text, where Trino's json_extract_scalar is NULL: lake/json_arrays.TRINO_JSON_TEXT), an
  array's elements tested with `any_match` over the array cast to JSON ARRAY, each element read so (DuckDB's
  `list_bool_or(list_transform(...))` over from_json's VARCHAR elements; a cast to VARCHAR ARRAY fails on an
  object or array among them), and a
  correlation's `UNION ALL BY NAME` as `UNION ALL` when its parts have the same columns (rules of
  one table; rules over two tables cannot be correlated on Athena: DialectError).

What sqlglot itself cannot write in Trino is a DialectError too, raised when the rule is converted
(bundle.compile_bundle, at `cdk synth`: the rule's file is named).
"""

from __future__ import annotations

import re

import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel, SqlglotError

from loglake.lake.json_arrays import TRINO_JSON_TEXT
from loglake.rules.bundle import WINDOW_MARK, fill_window
from loglake.rules.model import Rule

ATHENA = "trino"
_NULL_MARK = "\uffffloglake-null"  # stands for NULL among distinct values (U+FFFF: never in real text)


class DialectError(ValueError):
    """The rule's SQL cannot be written for the engine; the message says what."""


def athena_sql(rule: Rule, since_ms: int, until_ms: int) -> str:
    """The SQL of one run of `rule` over [since_ms, until_ms), for Athena."""
    return fill_window(athena_template(rule), rule.plan.reach_ms, since_ms, until_ms)


def athena_template(rule: Rule) -> str:
    """The rule's SQL for Athena with the window left as marks (`'@loglake:since@'`, and
    `'@loglake:since:day@'` for its day) that fill_window writes in without sqlglot (a function can
    run a template converted where the rules were loaded)."""
    try:
        tree = sqlglot.parse_one(rule.plan.sql, read="duckdb")
        # One pass each: a pass does not look inside what it replaced (JSON reads first, inside everything).
        tree = tree.transform(_window_marks).transform(_json_reads).transform(_trino_forms)
        tree = _qualified_last(tree)
        return tree.sql(dialect=ATHENA, unsupported_level=ErrorLevel.RAISE)
    except SqlglotError as e:
        raise DialectError(f"cannot be written for Athena: {str(e).splitlines()[0]}") from None


def _window_marks(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.Cast) and isinstance(node.this, exp.Placeholder) and node.to.is_type("date"):
        return exp.Literal.string(WINDOW_MARK.format(node.this.name + ":day"))  # the partition's text
    if isinstance(node, exp.Placeholder):
        return exp.cast(exp.Literal.string(WINDOW_MARK.format(node.name)), exp.DataType.build("timestamp"))
    return node


def _json_reads(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.JSONExtractScalar):  # text that is not JSON reads as NULL, as locally
        value = exp.JSONExtract(this=node.this.copy(), expression=node.expression.copy())
        return exp.func("try", _json_text(value))
    return node


def _json_text(value: exp.Expression) -> exp.Expression:
    """The text of a JSON value as DuckDB reads it (TRINO_JSON_TEXT)."""
    text = sqlglot.parse_one(TRINO_JSON_TEXT.format(json="_loglake_json"), read=ATHENA)
    return text.transform(lambda n: value.copy() if isinstance(n, exp.Column) and n.name == "_loglake_json" else n)


def _trino_forms(node: exp.Expression) -> exp.Expression:
    """What Trino lacks, in the forms it has (QUALIFY aside: _without_qualify, after these)."""
    if isinstance(node, exp.Window) and isinstance(node.this, exp.Count) and isinstance(node.this.this, exp.Distinct):
        return _distinct_count(node)
    if isinstance(node, (exp.Between, exp.Binary)) and _is_date_partition(node.this):
        return _date_as_text(node)
    if isinstance(node, exp.Interval) and node.unit is not None and node.unit.name.upper() == "MILLISECOND":
        return _in_seconds(node)
    if isinstance(node, exp.IgnoreNulls) and isinstance(node.this, exp.AnyValue):
        return node.this  # Trino's arbitrary() takes a non-null value already
    if isinstance(node, exp.Union) and node.args.get("by_name"):
        return _union_by_position(node)
    if isinstance(node, exp.Anonymous) and node.name.lower() == "list_bool_or" and _is_transform(node.expressions):
        transform = node.expressions[0]  # an array's elements tested (lake/json_arrays.py), its parts rewritten too:
        array, test = (part.transform(_trino_forms) for part in (transform.this, transform.expression))
        return exp.Anonymous(this="any_match", expressions=[array, test])  # (the pass does not look inside it)
    if isinstance(node, exp.FromJson):  # (json_arrays' elements as text: a JSON array cast to one of VARCHAR)
        if node.expression.name != '["VARCHAR"]':
            raise DialectError(
                f"from_json(..., {node.expression.sql()}) has no form on Athena: read JSON with json_extract"
            )
        # the array as JSON elements, each as its text: written JSON ARRAY, which Trino reads as ARRAY(JSON) and the
        # SELECT check's DuckDB parser reads too
        elements = exp.Cast(this=node.this, to=exp.DataType(this=exp.DataType.Type.USERDEFINED, kind="JSON ARRAY"))
        each = exp.Lambda(this=_json_text(exp.column("x")), expressions=[exp.to_identifier("x")])
        return exp.Transform(this=elements, expression=each)
    if isinstance(node, exp.RegexpLike) and isinstance(node.expression, exp.Literal) and node.expression.is_string:
        node.set("expression", exp.Literal.string(ends_of_text(node.expression.name)))
        return node  # (its text, whose JSON reads were rewritten, is looked at as the pass goes on)
    if isinstance(node, exp.Contains):
        position = exp.StrPosition(this=node.this, substr=node.expression)
        return exp.GT(this=position, expression=exp.Literal.number(0))
    if isinstance(node, exp.EndsWith):
        text, end = node.this, node.expression
        tail = exp.Substring(this=text, start=exp.Neg(this=exp.Length(this=end.copy())))
        empty = exp.EQ(this=exp.Length(this=end.copy()), expression=exp.Literal.number(0))
        return exp.paren(exp.or_(empty, exp.EQ(this=tail, expression=end.copy())))
    return node


def ends_of_text(pattern: str) -> str:
    """An RE2 pattern with each `$` that means the end of the text (outside a class, not escaped, not under the
    `m` flag) written `\\z`, which Trino reads so too (see the module's notes)."""
    out, i = [], 0
    multiline = [False]  # per group: whether `m` is on (`(?m)` sets it for the rest of the group)
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            end = pattern.find("\\E", i + 2) if pattern.startswith("\\Q", i) else i + 2
            end = len(pattern) if end < 0 else end
            out.append(pattern[i:end])
            i = end
            continue
        if char == "[":
            end = _class_end(pattern, i)
            out.append(pattern[i:end])
            i = end
            continue
        if char == "(":
            flags = re.match(r"\(\?([imsU]*)(?:-([imsU]*))?([:)])", pattern[i:])
            on = multiline[-1]
            if flags:
                on = ("m" in flags[1] or on) and "m" not in (flags[2] or "")
            if flags and flags[3] == ")":
                multiline[-1] = on  # for the rest of the group
            else:
                multiline.append(on)
        elif char == ")" and len(multiline) > 1:
            multiline.pop()
        out.append("\\z" if char == "$" and not multiline[-1] else char)
        i += 1
    return "".join(out)


def _class_end(pattern: str, start: int) -> int:
    """Where the character class opening at `start` ends (past its `]`; a `]` first in it is one of its
    characters, and `[:alpha:]` a part of it)."""
    i = start + 1
    if pattern.startswith("^", i):
        i += 1
    if pattern.startswith("]", i):
        i += 1
    while i < len(pattern):
        if pattern[i] == "\\":
            i += 2
        elif pattern.startswith("[:", i) and (close := pattern.find(":]", i + 2)) >= 0:
            i = close + 2
        elif pattern[i] == "]":
            return i + 1
        else:
            i += 1
    return len(pattern)


def _is_transform(arguments: list[exp.Expression]) -> bool:
    return len(arguments) == 1 and isinstance(arguments[0], exp.Transform)


def _is_date_partition(node: exp.Expression | None) -> bool:
    return isinstance(node, exp.Column) and node.name == "date"


def _date_as_text(node: exp.Expression) -> exp.Expression:
    """`"date"` compared with dates: on AWS the partition is text, so the dates are written as text
    (`CAST(CAST(x AS DATE) AS VARCHAR)`, constant for Athena, which then lists only those days)."""
    for name in ("low", "high", "expression"):
        operand = node.args.get(name)
        if isinstance(operand, exp.Cast) and operand.to.is_type("date"):
            node.set(name, exp.cast(operand.copy(), exp.DataType.build("varchar")))
    return node


def _in_seconds(interval: exp.Interval) -> exp.Expression:
    """Trino's interval literals stop at SECOND: milliseconds become (fractional) seconds."""
    try:
        ms = int(interval.this.name)
    except ValueError:
        raise DialectError(f"an interval of {interval.this.name!r} milliseconds") from None
    seconds = f"{ms // 1000}" if ms % 1000 == 0 else f"{ms / 1000:.3f}"
    return exp.Interval(this=exp.Literal.string(seconds), unit=exp.Var(this="SECOND"))


def _qualified_last(tree: exp.Expression) -> exp.Expression:
    """Every SELECT with QUALIFY rewritten, innermost first."""
    for select in reversed(list(tree.find_all(exp.Select))):
        if select.args.get("qualify"):
            replacement = _without_qualify(select)
            if select is tree:
                tree = replacement
            else:
                select.replace(replacement)
    return tree


def _without_qualify(select: exp.Select) -> exp.Expression:
    """SELECT ... QUALIFY c ORDER BY o  ->  SELECT * FROM (SELECT ..., w AS _loglake_qN) WHERE c ORDER BY o,
    each window function of `c` computed inside as a column of its own, `o` by output names."""
    inner = select.copy()
    condition = inner.args.pop("qualify").this
    order = inner.args.pop("order", None)
    helpers = []
    for window in list(condition.find_all(exp.Window)):
        name = f"_loglake_q{len(helpers)}"
        helpers.append(exp.alias_(window.copy(), name))
        window.replace(exp.column(name))
    inner.set("expressions", [*inner.expressions, *helpers])
    outer = exp.select("*").from_(inner.subquery("_loglake_q")).where(condition)
    if order is not None:
        for column in order.find_all(exp.Column):
            column.set("table", None)  # `e."service"` is `"service"` outside
        outer.set("order", order)
    return outer


def _distinct_count(window: exp.Window) -> exp.Expression:
    """count(DISTINCT x) OVER w (Trino has no DISTINCT in a window): the distinct values of x over w,
    NULL standing in as a mark and taken back off."""
    value = window.this.this.expressions[0]
    as_text = exp.Coalesce(
        this=exp.cast(value.copy(), exp.DataType.build("varchar")), expressions=[exp.Literal.string(_NULL_MARK)]
    )
    values = window.copy()
    values.set("this", exp.ArrayAgg(this=as_text))
    had_null = window.copy()
    had_null.set(
        "this",
        exp.Max(
            this=exp.If(
                this=exp.Is(this=value.copy(), expression=exp.Null()),
                true=exp.Literal.number(1),
                false=exp.Literal.number(0),
            )
        ),
    )
    distinct = exp.func("cardinality", exp.func("array_distinct", values))
    return exp.paren(exp.Sub(this=distinct, expression=had_null))


def _union_by_position(union: exp.Union) -> exp.Expression:
    parts = _union_parts(union)
    shapes = {(_tables(p), tuple(e.alias_or_name for e in p.expressions)) for p in parts}
    if len(shapes) != 1:
        raise DialectError(
            "a correlation over rules of different tables (or naming its fields differently) cannot run on"
            " Athena: correlate rules of one table"
        )
    union.set("by_name", None)
    return union


def _union_parts(node: exp.Expression) -> list[exp.Select]:
    if isinstance(node, exp.Union):
        return _union_parts(node.this) + _union_parts(node.expression)
    return [node]


def _tables(select: exp.Select) -> tuple[str, ...]:
    return tuple(sorted(t.name for t in select.find_all(exp.Table)))
