"""Stack updates that add or remove DynamoDB GSIs, one index per table per update.

DynamoDB creates or deletes one global secondary index per UpdateTable, and CloudFormation fails
a stack update whose template adds two to a live table. So when a template would add or remove
more than one index of a table the stack already has, `imgpipe deploy` sends a series of
templates, each differing from the last by at most one index of each table:

    plan(live, target)           pure: the index sets in between, and which template carries each
      additions first, on the stack's own template (its parameters and code as they are): the
        code that runs meanwhile is the old code, which uses none of the new indexes;
      then removals, on the new template (new code), which holds the indexes still to go, one
        fewer each time; the new template itself is the last step, so with no removal the
        last addition comes with it.
    step_template(...)           pure: a template with one table's indexes set to a given list
    load_template(text)          CloudFormation YAML (short-form tags) or JSON as plain data
    live_tables(...)             the stack's tables that the new template keeps, and their
                                 indexes as DescribeTable lists them
    wait_until_active(...)       until the table and each index are ACTIVE
"""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from mypy_boto3_cloudformation.client import CloudFormationClient
    from mypy_boto3_dynamodb.client import DynamoDBClient

log = logging.getLogger(__name__)

TABLE_TYPE = "AWS::DynamoDB::Table"
Template = dict[str, Any]


class IndexStepError(RuntimeError):
    """The index steps cannot be planned or did not finish; the message says why."""


@dataclass(frozen=True)
class LiveTable:
    """A table of the stack that the new template keeps: its indexes now and to be."""

    logical_id: str
    name: str
    live: tuple[str, ...]
    target: tuple[str, ...]

    @property
    def added(self) -> tuple[str, ...]:
        return tuple(n for n in self.target if n not in self.live)

    @property
    def removed(self) -> tuple[str, ...]:
        return tuple(n for n in self.live if n not in self.target)


@dataclass(frozen=True)
class Step:
    """One intermediate stack update: each table's index names, on the stack's own template
    (`on_new_template` False) or on the new one."""

    indexes: Mapping[str, tuple[str, ...]]
    on_new_template: bool


def plan(tables: Sequence[LiveTable]) -> list[Step]:
    """The updates before the new template's own, each at most one index from the last per
    table (no step at all when the new template is one index or none from the live tables)."""
    if all(len(t.added) + len(t.removed) <= 1 for t in tables):
        return []
    adding: dict[str, list[tuple[str, ...]]] = {}
    for t in tables:
        # With nothing to remove, the new template brings the last addition itself.
        count = len(t.added) - (0 if t.removed else 1)
        adding[t.logical_id] = [t.live + t.added[:k] for k in range(1, count + 1)]
    steps = [
        Step({t.logical_id: _at(adding[t.logical_id], k, t.live) for t in tables}, False)
        for k in range(max(len(sets) for sets in adding.values()))
    ]
    removals = max(len(t.removed) for t in tables)
    for m in range(removals - 1):
        kept = {
            t.logical_id: t.target + t.removed[: max(0, len(t.removed) - 1 - m)] for t in tables
        }
        steps.append(Step(kept, True))
    return steps


def _at(sets: list[tuple[str, ...]], k: int, start: tuple[str, ...]) -> tuple[str, ...]:
    """The k-th set, or the last one once a table has no more to add."""
    if not sets:
        return start
    return sets[min(k, len(sets) - 1)]


# -- templates ----------------------------------------------------------------------------------


class _CfnLoader(yaml.SafeLoader):
    """YAML as CloudFormation reads it: short-form intrinsics become their long form, and
    dates stay strings (AWSTemplateFormatVersion: 2010-09-09 is a string to CloudFormation)."""


_CfnLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if suffix in ("Ref", "Condition"):
        return {suffix: value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


def load_template(text: str | Mapping[str, Any]) -> Template:
    """A template's body (GetTemplate gives JSON bodies already parsed) as plain data."""
    if not isinstance(text, str):
        return copy.deepcopy(dict(text))
    loaded = yaml.load(text, Loader=_CfnLoader)  # noqa: S506 - a SafeLoader subclass
    if not isinstance(loaded, dict):
        raise IndexStepError("the template is not a mapping")
    return loaded


def dump_template(template: Template) -> str:
    """JSON: CloudFormation reads it as it reads YAML, SAM transform included."""
    return json.dumps(template, indent=1, sort_keys=False) + "\n"


def tables(template: Template) -> dict[str, dict[str, Any]]:
    """The template's DynamoDB tables by logical id."""
    resources = template.get("Resources") or {}
    return {
        name: resource
        for name, resource in resources.items()
        if isinstance(resource, dict) and resource.get("Type") == TABLE_TYPE
    }


def index_definitions(table: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    properties = table.get("Properties") or {}
    return {gsi["IndexName"]: gsi for gsi in properties.get("GlobalSecondaryIndexes") or []}


def step_template(
    base: Template, other: Template, indexes: Mapping[str, Sequence[str]]
) -> Template:
    """`base` with each named table's GSIs set to `indexes` (definitions from `base`, else from
    `other`) and its AttributeDefinitions to exactly the attributes its keys then name."""
    made = copy.deepcopy(base)
    for logical_id, names in indexes.items():
        table = tables(made)[logical_id]
        properties = table.setdefault("Properties", {})
        theirs = tables(other).get(logical_id, {})
        known = {**index_definitions(theirs), **index_definitions(table)}
        missing = [n for n in names if n not in known]
        if missing:
            raise IndexStepError(f"{logical_id}: no definition of index {', '.join(missing)}")
        gsis = [copy.deepcopy(known[n]) for n in names]
        types = {
            a["AttributeName"]: a
            for source in (theirs, table)
            for a in (source.get("Properties") or {}).get("AttributeDefinitions") or []
        }
        used = _key_attributes(properties, gsis)
        properties["AttributeDefinitions"] = [types[a] for a in used]
        if gsis:
            properties["GlobalSecondaryIndexes"] = gsis
        else:
            properties.pop("GlobalSecondaryIndexes", None)
    return made


def _key_attributes(properties: Mapping[str, Any], gsis: list[dict[str, Any]]) -> list[str]:
    """What the table's key, its LSIs and `gsis` name, in first-use order: DynamoDB refuses an
    AttributeDefinition that no key uses."""
    schemas = [properties.get("KeySchema") or []]
    schemas += [i.get("KeySchema") or [] for i in properties.get("LocalSecondaryIndexes") or []]
    schemas += [g.get("KeySchema") or [] for g in gsis]
    return list(dict.fromkeys(k["AttributeName"] for schema in schemas for k in schema))


# -- the live stack -----------------------------------------------------------------------------


def live_template(cfn_client: CloudFormationClient, stack: str) -> Template:
    body = cfn_client.get_template(StackName=stack, TemplateStage="Original")["TemplateBody"]
    return load_template(body)


def live_tables(
    cfn_client: CloudFormationClient,
    dynamodb_client: DynamoDBClient,
    stack: str,
    new_template: Template,
) -> list[LiveTable]:
    """The stack's tables that `new_template` declares too, with their indexes now and then."""
    physical = {
        r["LogicalResourceId"]: r.get("PhysicalResourceId", "")
        for r in _stack_resources(cfn_client, stack)
        if r["ResourceType"] == TABLE_TYPE
    }
    found: list[LiveTable] = []
    for logical_id, table in tables(new_template).items():
        name = physical.get(logical_id)
        if not name:
            continue  # a new table is created with all its indexes at once
        described = dynamodb_client.describe_table(TableName=name)["Table"]
        live = tuple(g["IndexName"] for g in described.get("GlobalSecondaryIndexes", []))
        found.append(LiveTable(logical_id, name, live, tuple(index_definitions(table))))
    return found


def _stack_resources(cfn_client: CloudFormationClient, stack: str) -> list[dict[str, Any]]:
    resources: list[dict[str, Any]] = []
    for page in cfn_client.get_paginator("list_stack_resources").paginate(StackName=stack):
        resources.extend(dict(r) for r in page["StackResourceSummaries"])
    return resources


def wait_until_active(
    dynamodb_client: DynamoDBClient,
    table: str,
    names: Sequence[str],
    *,
    poll_s: float,
    timeout_s: float,
) -> None:
    """Until `table` is ACTIVE with exactly the indexes `names`, each ACTIVE (a new index
    is usable only once DynamoDB has backfilled it from the table)."""
    deadline = time.monotonic() + timeout_s
    while True:
        described = dynamodb_client.describe_table(TableName=table)["Table"]
        gsis = {
            g["IndexName"]: g.get("IndexStatus")
            for g in described.get("GlobalSecondaryIndexes", [])
        }
        ready = described.get("TableStatus") == "ACTIVE" and set(gsis) == set(names)
        if ready and all(status == "ACTIVE" for status in gsis.values()):
            return
        if time.monotonic() > deadline:
            raise IndexStepError(
                f"table {table} not ready after {timeout_s:.0f} s: "
                f"{described.get('TableStatus')}, indexes {gsis}, expected {sorted(names)}"
            )
        log.info("waiting for table %s: indexes %s", table, gsis)
        time.sleep(poll_s)
