"""What rule files and the routing file beside them share, apart from the loader (and pySigma): the
routing file's name, and YAML whose mappings may not repeat a key. The AWS functions read
alerting.yml through these without importing the rule loader (their layer has no pySigma)."""

from __future__ import annotations

from typing import Any

import yaml

ROUTING_FILE = "alerting.yml"  # the destinations and routes of alerts, beside the rules


class UniqueKeys(yaml.CSafeLoader):
    """YAML whose mappings may not repeat a key (the later one would silently win), and whose dates are days
    of the calendar: PyYAML's ValueError on one that is not (`until: 2026-02-30`) is no YAML error, so it named no
    line, and one in alerting.yml failed every round of the rules."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key!r} appears twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)

    def construct_yaml_timestamp(self, node: yaml.ScalarNode) -> Any:
        try:
            return super().construct_yaml_timestamp(node)
        except ValueError as e:
            raise yaml.constructor.ConstructorError(
                None, None, f"{node.value!r} is no date or time: {e}", node.start_mark
            ) from None


UniqueKeys.add_constructor("tag:yaml.org,2002:timestamp", UniqueKeys.construct_yaml_timestamp)
