"""Sigma detections as DuckDB SQL over loglake's tables: a pySigma processing pipeline and backend.

The pipeline maps each logsource loglake holds to its table (pipeline state `table`) and the field
names rules use to the table's columns (sources.py). The backend turns a detection's condition into
a SQL boolean expression over that table, with Sigma's matching rules:

- strings match whole values, ignoring case (`ILIKE`), unless `|cased` (`LIKE` or `=`); `*` and `?`
  are wildcards, `|contains`, `|startswith` and `|endswith` add them; a value without letters, or a
  cased one, is a plain `=`;
- a string against a numeric column compares its text (`sc-status|startswith: '5'`); a number against
  a numeric column compares numbers, against text its digits or the number the text is (`401.0`);
  `|gt` and friends compare numbers;
- `|re` is an RE2 search (`regexp_matches`) with the `|i`, `|m`, `|s` flags;
- `|cidr` matches the text of an address of the network, of its family (networks.py); `|exists` and `null`
  test for the field;
- a value inside the `attributes` JSON is read as text (`json_extract_string`); one holding an array matches by
  any of its values, as search finds it (lake/json_arrays.py), and by its JSON text;
- `not` treats a missing field as a non-match of what it negates (SQL's NULL would drop the row).

Correlation rules are put together from their rules' conditions in correlation.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from sigma.conditions import ConditionAND, ConditionFieldEqualsValueExpression, ConditionNOT, ConditionOR
from sigma.conversion.base import TextQueryBackend
from sigma.conversion.state import ConversionState
from sigma.exceptions import SigmaFeatureNotSupportedByBackendError
from sigma.processing.conditions import LogsourceCondition
from sigma.processing.pipeline import ProcessingItem, ProcessingPipeline
from sigma.processing.transformations import FieldMappingTransformation, SetStateTransformation
from sigma.types import (
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaExists,
    SigmaFieldReference,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaRegularExpressionFlag,
    SigmaString,
    SigmaTimestampPart,
    SpecialChars,
    TimestampPart,
)

from loglake.digits import same_as_double
from loglake.lake.json_arrays import any_element
from loglake.rules.networks import network_regex
from loglake.rules.sources import BY_TABLE, SOURCES, Field, Source, UnknownField, quote_name, sql_text

TABLE_STATE = "table"  # the pipeline state key naming the rule's table
_STRINGS = (SigmaString, SigmaCasedString)  # (exactly: not their subclasses)
_COMPARE = {
    SigmaCompareExpression.CompareOperators.LT: "<",
    SigmaCompareExpression.CompareOperators.LTE: "<=",
    SigmaCompareExpression.CompareOperators.GT: ">",
    SigmaCompareExpression.CompareOperators.GTE: ">=",
}
_PARTS = {
    TimestampPart.MINUTE: "minute",
    TimestampPart.HOUR: "hour",
    TimestampPart.DAY: "day",
    TimestampPart.WEEK: "week",
    TimestampPart.MONTH: "month",
    TimestampPart.YEAR: "year",
}
_FLAGS = {
    SigmaRegularExpressionFlag.IGNORECASE: "i",
    SigmaRegularExpressionFlag.MULTILINE: "m",
    SigmaRegularExpressionFlag.DOTALL: "s",
}


def loglake_pipeline() -> ProcessingPipeline:
    """Each source's logsources set the rule's table and map its field names to the table's columns."""
    items = []
    for source in SOURCES:

        def when(source: Source = source) -> list[LogsourceCondition]:  # a condition belongs to one item
            return [LogsourceCondition(**logsource) for logsource in source.logsources]

        items.append(
            ProcessingItem(
                SetStateTransformation(TABLE_STATE, source.table.name),
                rule_conditions=when(),
                rule_condition_linking=any,
                identifier=f"loglake_{source.table.name}_table",
            )
        )
        mapping = {name: column for name, column in source.aliases.items() if source.column_of(name) == column}
        items.append(
            ProcessingItem(
                FieldMappingTransformation(dict(mapping)),
                rule_conditions=when(),
                rule_condition_linking=any,
                identifier=f"loglake_{source.table.name}_fields",
            )
        )
    return ProcessingPipeline(name="loglake", items=items)


class DuckDBBackend(TextQueryBackend):
    """A Sigma detection's condition as a DuckDB SQL expression over its table (see the module's notes)."""

    name: ClassVar[str] = "loglake DuckDB"
    identifier: ClassVar[str] = "loglake"
    formats: ClassVar[dict[str, str]] = {"default": "a SQL condition over the rule's loglake table"}
    requires_pipeline: ClassVar[bool] = False
    precedence: ClassVar[tuple[type, type, type]] = (ConditionNOT, ConditionAND, ConditionOR)
    group_expression: ClassVar[str] = "({expr})"
    token_separator: str = " "
    or_token: ClassVar[str] = "OR"
    and_token: ClassVar[str] = "AND"
    not_token: ClassVar[str] = "NOT"
    eq_token: ClassVar[str] = " = "
    str_quote: ClassVar[str] = "'"

    # -- fields and values -------------------------------------------------------------------

    def _source(self, state: ConversionState) -> Source:
        table = state.processing_state.get(TABLE_STATE)
        if table not in BY_TABLE:
            raise SigmaFeatureNotSupportedByBackendError("the rule's logsource is not one loglake holds")
        return BY_TABLE[table]

    def _field(self, name: str | None, state: ConversionState) -> Field:
        if name is None:
            raise SigmaFeatureNotSupportedByBackendError("a value without a field here")
        try:
            return self._source(state).field(name)
        except UnknownField as e:
            raise SigmaFeatureNotSupportedByBackendError(str(e)) from None

    def _text(self, name: str | None, state: ConversionState) -> str:
        """The field as text, for string matching."""
        field = self._field(name, state)
        return field.sql if field.kind == "text" else f"CAST({field.sql} AS VARCHAR)"

    def _any_value(self, name: str | None, state: ConversionState, test: Callable[[str], str]) -> str:
        """`test` of the field as text; for a value in a JSON column, of each element of an array there too."""
        field = self._field(name, state)
        if field.json_path is None:
            return test(self._text(name, state))
        column, paths = field.json_path
        arrays = [f"json_extract({quote_name(column)}, {sql_text(path)})" for path in paths]
        array = arrays[0] if len(arrays) == 1 else f"coalesce({', '.join(arrays)})"
        return f"({test(field.sql)} OR {any_element(array, test('x'), quote_name(column))})"

    @staticmethod
    def _like(value: SigmaString) -> tuple[str, bool, bool]:
        """The value as a LIKE pattern: (pattern, whether it has wildcards, whether it needs ESCAPE '\\')."""
        parts: list[str] = []
        wild = escaped = False
        for part in value.s:
            if isinstance(part, str):
                for char in part:
                    escaped |= char in "%_\\"
                    parts.append("\\" + char if char in "%_\\" else char)
            elif part is SpecialChars.WILDCARD_MULTI:
                parts.append("%")
                wild = True
            elif part is SpecialChars.WILDCARD_SINGLE:
                parts.append("_")
                wild = True
            else:
                raise SigmaFeatureNotSupportedByBackendError(
                    "placeholders (%name% values, |expand) are not supported: write the values out"
                )
        return "".join(parts), wild, escaped

    def _string_match(self, text_sql: str, value: SigmaString, cased: bool, anywhere: bool = False) -> str:
        """`text_sql` matching the value (`anywhere`: containing it), as Sigma means it."""
        pattern, wild, escaped = self._like(value)
        if anywhere:
            pattern, wild = f"%{pattern}%", True
        if not wild:
            plain = str(value.to_plain())
            if cased or plain.lower() == plain.upper():
                return f"{text_sql} = {sql_text(plain)}"
        operator = "LIKE" if cased else "ILIKE"
        escape = " ESCAPE '\\'" if escaped else ""
        return f"{text_sql} {operator} {sql_text(pattern)}{escape}"

    # -- leaves ------------------------------------------------------------------------------

    def convert_condition_field_eq_val_str(self, cond: ConditionFieldEqualsValueExpression, state: Any) -> str:
        return self._any_value(cond.field, state, lambda text: self._string_match(text, cond.value, cased=False))

    def convert_condition_field_eq_val_str_case_sensitive(
        self, cond: ConditionFieldEqualsValueExpression, state: Any
    ) -> str:
        return self._any_value(cond.field, state, lambda text: self._string_match(text, cond.value, cased=True))

    def convert_condition_field_eq_val_num(self, cond: ConditionFieldEqualsValueExpression, state: Any) -> str:
        field = self._field(cond.field, state)
        number: SigmaNumber = cond.value
        if field.kind == "number":
            return f"{field.sql} = {number.number}"
        if field.kind == "text":  # its digits, or a number written otherwise: 401.0 is 401 (a shipper's float)
            number_text = str(number.number)
            if not same_as_double(number.number):  # (an id past 2**53: as a double, its neighbours too)
                return self._any_value(cond.field, state, lambda text: f"{text} = {sql_text(number_text)}")
            return self._any_value(
                cond.field,
                state,
                lambda text: f"({text} = {sql_text(number_text)} OR TRY_CAST({text} AS DOUBLE) = {number_text})",
            )
        raise SigmaFeatureNotSupportedByBackendError(
            f"{cond.field} holds a {field.kind}: compare it with a string, or a |minute, |hour, ... part"
        )

    def convert_condition_field_eq_val_bool(self, cond: ConditionFieldEqualsValueExpression, state: Any) -> str:
        word = "true" if cond.value.boolean else "false"
        return self._any_value(cond.field, state, lambda text: f"lower({text}) = '{word}'")

    def convert_condition_field_eq_val_re(self, cond: ConditionFieldEqualsValueExpression, state: Any) -> str:
        regex = sql_text(_regex(cond.value))
        return self._any_value(cond.field, state, lambda text: f"regexp_matches({text}, {regex})")

    def convert_condition_field_eq_val_cidr(self, cond: ConditionFieldEqualsValueExpression, state: Any) -> str:
        cidr: SigmaCIDRExpression = cond.value
        regex = sql_text(network_regex(cidr.network))  # (not pySigma's text prefixes: `*` for 0.0.0.0/0)
        return self._any_value(cond.field, state, lambda text: f"regexp_matches({text}, {regex})")

    def convert_condition_field_compare_op_val(self, cond: ConditionFieldEqualsValueExpression, state: Any) -> str:
        field = self._field(cond.field, state)
        compare: SigmaCompareExpression = cond.value
        number = compare.number.number
        if field.kind == "number":
            return f"{field.sql} {_COMPARE[compare.op]} {number}"
        if field.kind == "text":
            return self._any_value(
                cond.field, state, lambda text: f"TRY_CAST({text} AS DOUBLE) {_COMPARE[compare.op]} {number}"
            )
        raise SigmaFeatureNotSupportedByBackendError(f"{cond.field} holds a {field.kind}, not a number")

    def convert_condition_field_eq_val_timestamp_part(
        self, cond: ConditionFieldEqualsValueExpression, state: Any
    ) -> str:
        field = self._field(cond.field, state)
        part: SigmaTimestampPart = cond.value
        if field.kind not in ("timestamp", "date"):
            raise SigmaFeatureNotSupportedByBackendError(
                f"{cond.field} is not a time: |{_PARTS[part.timestamp_part]} needs one"
            )
        return f"extract({_PARTS[part.timestamp_part]} FROM {field.sql}) = {part.number}"

    def convert_condition_field_eq_field(self, cond: ConditionFieldEqualsValueExpression, state: Any) -> str:
        """The field (or, holding a list, any of its items, as with a value) against the referenced field's value."""
        reference: SigmaFieldReference = cond.value
        right = f"lower({self._text(reference.field, state)})"

        def test(text: str) -> str:
            left = f"lower({text})"
            if reference.starts_with and reference.ends_with:
                return f"contains({left}, {right})"
            if reference.starts_with:
                return f"starts_with({left}, {right})"
            if reference.ends_with:
                return f"ends_with({left}, {right})"
            return f"{left} = {right}"

        return self._any_value(cond.field, state, test)

    def convert_condition_field_eq_val_null(self, cond: ConditionFieldEqualsValueExpression, state: Any) -> str:
        return f"{self._field(cond.field, state).sql} IS NULL"

    def convert_condition_field_eq_val_exists(self, cond: ConditionFieldEqualsValueExpression, state: Any) -> str:
        field = self._field(cond.field, state)
        exists: SigmaExists = cond.value
        if field.json_path is not None:
            column, paths = field.json_path
            present = " OR ".join(f"json_exists({quote_name(column)}, {sql_text(path)})" for path in paths)
            test = f"coalesce({present}, false)"
            return test if exists.exists else f"NOT {test}"
        return f"{field.sql} IS {'NOT ' if exists.exists else ''}NULL"

    def convert_condition_field_eq_query_expr(self, cond: Any, state: Any) -> str:
        raise SigmaFeatureNotSupportedByBackendError("query expressions (placeholders) are not supported")

    def _keyword_text(self, state: Any) -> str:
        return self._text(self._source(state).keyword_field, state)

    def convert_condition_val_str(self, cond: Any, state: Any) -> str:
        """A keyword: anywhere in the source's text (a record's message, a request's URL), ignoring case
        unless |cased."""
        cased = isinstance(cond.value, SigmaCasedString)
        return self._string_match(self._keyword_text(state), cond.value, cased, anywhere=True)

    def convert_condition_val_num(self, cond: Any, state: Any) -> str:
        return f"contains({self._keyword_text(state)}, {sql_text(str(cond.value.number))})"

    def convert_condition_val_re(self, cond: Any, state: Any) -> str:
        return f"regexp_matches({self._keyword_text(state)}, {sql_text(_regex(cond.value))})"

    def convert_condition_query_expr(self, cond: Any, state: Any) -> str:
        raise SigmaFeatureNotSupportedByBackendError("query expressions (placeholders) are not supported")

    # -- structure ---------------------------------------------------------------------------

    def convert_condition_or(self, cond: ConditionOR, state: Any) -> Any:
        """Any of several strings of one field (a list of values) as one test of the field, read once, the values
        without wildcards as a list (`lower(f) IN (...)`): a test each was a JSON read each, and a list of 16,000
        values 4 MB of SQL, which took 20 s to load."""
        lists: dict[tuple[str, bool], list[SigmaString]] = {}
        others = []
        for arg in cond.args:
            if isinstance(arg, ConditionFieldEqualsValueExpression) and arg.field and type(arg.value) in _STRINGS:
                lists.setdefault((arg.field, type(arg.value) is SigmaCasedString), []).append(arg.value)
            else:
                others.append(arg)
        if all(len(values) < 2 for values in lists.values()):
            return super().convert_condition_or(cond, state)
        tests = [
            self._any_value(field, state, lambda text, v=values, c=cased: self._strings_match(text, v, c))
            for (field, cased), values in lists.items()
        ]
        tests += [self.convert_condition_group(arg, state) for arg in others]
        return " OR ".join(tests) if len(tests) > 1 else tests[0]

    def _strings_match(self, text_sql: str, values: list[SigmaString], cased: bool) -> str:
        """`text_sql` matching any of the values (_string_match's of each)."""
        plain: dict[str, list[str]] = {"as is": [], "any case": []}  # those without wildcards
        tests = []
        for value in values:
            if value.contains_special() or value.contains_placeholder():
                tests.append(self._string_match(text_sql, value, cased))
            else:
                text = str(value.to_plain())
                plain["as is" if cased or text.lower() == text.upper() else "any case"].append(text)
        if plain["as is"]:
            tests.append(f"{text_sql} IN ({', '.join(map(sql_text, plain['as is']))})")
        if plain["any case"]:  # as ILIKE without wildcards, which lowers both sides (as a constant, when ASCII)
            lowered = [sql_text(t.lower()) if t.isascii() else f"lower({sql_text(t)})" for t in plain["any case"]]
            tests.append(f"lower({text_sql}) IN ({', '.join(lowered)})")
        return f"({' OR '.join(tests)})" if len(tests) > 1 else tests[0]

    def convert_condition_not(self, cond: ConditionNOT, state: Any) -> str:
        """`NOT coalesce(x, false)`: where x is NULL (a field the record lacks), it did not match, so
        its negation matches, as Sigma means it."""
        inner = self.convert_condition_group(cond.args[0], state)
        return f"NOT coalesce({inner}, false)"

    def finalize_query_default(self, rule: Any, query: str, index: int, state: Any) -> str:
        return query

    def convert_correlation_rule(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("correlation rules are put together by loglake.rules.correlation")


def _regex(regex: SigmaRegularExpression) -> str:
    """The RE2 pattern with its flags in front: `(?i)...`."""
    flags = "".join(sorted(_FLAGS[f] for f in regex.flags))
    return (f"(?{flags})" if flags else "") + str(regex.regexp)
