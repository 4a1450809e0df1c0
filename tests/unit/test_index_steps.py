"""index_steps: the plan of stack updates one index apart, and the templates it sends.

CloudFormation (DynamoDB's UpdateTable) creates or deletes one GSI of a table per update; moto
does not enforce it (tests/integration/test_deploy.py gives its server the rule), so the plan
is checked here for every pair of index sets: each update, the new template's own included,
changes at most one index of each table.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import decode
from hypothesis import given
from hypothesis import strategies as st

from imgpipe.ops.index_steps import (
    LiveTable,
    Step,
    dump_template,
    load_template,
    plan,
    step_template,
)

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "infra" / "template.yaml"
SHARDED = ("byStatus", "byUpload")
NEAR_DUPLICATES = ("bySha256", "byPhash0", "byPhash1", "byPhash2", "byPhash3")


def walk(tables: list[LiveTable], steps: list[Step]) -> list[tuple[bool, dict[str, set[str]]]]:
    """Each update's (on the new template?, index sets), the new template's own last."""
    final = (True, {t.logical_id: set(t.target) for t in tables})
    return [(s.on_new_template, {k: set(v) for k, v in s.indexes.items()}) for s in steps] + [final]


def assert_one_index_apart(tables: list[LiveTable], steps: list[Step]) -> None:
    updates = walk(tables, steps)
    before = {t.logical_id: set(t.live) for t in tables}
    for _, after in updates:
        for table, names in after.items():
            assert len(names ^ before[table]) <= 1, (before[table], names)
        before = after
    # the stack's own template (old code) first and only adding; the new one then, with
    # every index the new code uses (but for the last addition, which comes with it)
    flags = [on_new for on_new, _ in updates]
    assert flags == sorted(flags)
    for on_new, sets in updates[:-1]:
        for t in tables:
            if on_new:
                assert set(t.target) <= sets[t.logical_id]
            else:
                assert set(t.live) <= sets[t.logical_id]


def test_five_indexes_added_to_a_stack_of_two() -> None:
    table = LiveTable("ImagesTable", "images", SHARDED, SHARDED + NEAR_DUPLICATES)
    steps = plan([table])
    assert [s.indexes["ImagesTable"] for s in steps] == [
        SHARDED + NEAR_DUPLICATES[:n] for n in range(1, 5)
    ]
    assert not any(s.on_new_template for s in steps)
    assert_one_index_apart([table], steps)


@pytest.mark.parametrize(
    ("live", "target"),
    [(SHARDED, SHARDED), (SHARDED, (*SHARDED, "bySha256")), (SHARDED, ("byStatus",))],
)
def test_one_index_or_none_is_a_plain_update(
    live: tuple[str, ...], target: tuple[str, ...]
) -> None:
    assert plan([LiveTable("T", "t", live, target)]) == []


def test_removals_come_with_the_new_template_one_at_a_time() -> None:
    table = LiveTable("T", "t", ("a", "b", "c"), ("a",))
    assert plan([table]) == [Step({"T": ("a", "b")}, True)]


def test_additions_before_a_removal() -> None:
    table = LiveTable("T", "t", ("a", "old"), ("a", "x", "y"))
    steps = plan([table])
    assert steps == [
        Step({"T": ("a", "old", "x")}, False),
        Step({"T": ("a", "old", "x", "y")}, False),
    ]
    assert_one_index_apart([table], steps)


names = st.lists(st.sampled_from("abcdefg"), unique=True, max_size=7).map(tuple)


@given(live1=names, target1=names, live2=names, target2=names)
def test_every_plan_is_one_index_apart(
    live1: tuple[str, ...],
    target1: tuple[str, ...],
    live2: tuple[str, ...],
    target2: tuple[str, ...],
) -> None:
    tables = [LiveTable("T1", "t1", live1, target1), LiveTable("T2", "t2", live2, target2)]
    assert_one_index_apart(tables, plan(tables))


# -- templates ----------------------------------------------------------------------------------


def plain(node: Any) -> Any:
    return json.loads(json.dumps(node))


def test_the_template_loads_as_cfn_lint_reads_it() -> None:
    """Short-form tags in their long form (cfn-lint's decoder is the reference)."""
    decoded, errors = decode(str(TEMPLATE))
    assert not errors
    loaded = load_template(TEMPLATE.read_text())
    assert loaded == plain(decoded)
    assert load_template(dump_template(loaded)) == loaded
    assert load_template("AWSTemplateFormatVersion: 2010-09-09\n")["AWSTemplateFormatVersion"] == (
        "2010-09-09"
    )


def images_table(template: dict[str, Any]) -> dict[str, Any]:
    return dict(template["Resources"]["ImagesTable"]["Properties"])


def test_a_step_template_sets_the_indexes_and_their_attributes_only() -> None:
    full = load_template(TEMPLATE.read_text())
    step = step_template(full, full, {"ImagesTable": (*SHARDED, "bySha256")})
    table = images_table(step)
    assert [g["IndexName"] for g in table["GlobalSecondaryIndexes"]] == [*SHARDED, "bySha256"]
    attributes = [a["AttributeName"] for a in table["AttributeDefinitions"]]
    assert attributes == ["imageId", "gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk", "sha256"]
    # everything else is the template as it was
    for key, value in images_table(full).items():
        if key not in ("GlobalSecondaryIndexes", "AttributeDefinitions"):
            assert table[key] == value
    assert {k: v for k, v in step["Resources"].items() if k != "ImagesTable"} == {
        k: v for k, v in full["Resources"].items() if k != "ImagesTable"
    }


def test_a_step_takes_an_index_it_lacks_from_the_other_template() -> None:
    full = load_template(TEMPLATE.read_text())
    older = step_template(full, full, {"ImagesTable": SHARDED})
    step = step_template(older, full, {"ImagesTable": (*SHARDED, "byPhash2")})
    [added] = [
        g for g in images_table(step)["GlobalSecondaryIndexes"] if g["IndexName"] == "byPhash2"
    ]
    assert added == next(
        g for g in images_table(full)["GlobalSecondaryIndexes"] if g["IndexName"] == "byPhash2"
    )


@pytest.mark.slow
def test_a_step_template_is_valid_cloudformation(tmp_path: Path) -> None:
    """What deploy sends for a step (JSON, SAM transform and all) passes cfn-lint as the
    YAML template does."""
    full = load_template(TEMPLATE.read_text())
    path = tmp_path / "step.json"
    path.write_text(dump_template(step_template(full, full, {"ImagesTable": SHARDED})))
    cfn_lint = Path(sys.executable).parent / "cfn-lint"
    done = subprocess.run(
        [str(cfn_lint), "--", str(path)], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
