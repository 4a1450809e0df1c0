"""imgpipe deploy: put the Lambda zip and the template in an artifacts bucket, then create or
update the stack through a CloudFormation change set, wait, and return the stack's outputs.

    deploy_stack(stack, ...)
      ensure the artifacts bucket imgpipe-artifacts-{account}-{region} (deploy_artifacts)
      upload the zip under lambda/{sha256}.zip and the template under templates/{sha256}.yaml:
        content-addressed, so an unchanged build is an unchanged CodeKey and no code update
      create a change set: CREATE for a new stack (or one left in REVIEW_IN_PROGRESS), UPDATE
        otherwise, keeping the previous value of every parameter not given (change_sets)
      wait for it; "no changes" deletes it and returns the current outputs
      execute it, wait for CREATE_COMPLETE / UPDATE_COMPLETE, or raise with the failed events
      an update that would create or delete more than one index of a live DynamoDB table is
        preceded by updates one index apart (index_steps), each waited for, indexes ACTIVE;
        then the caller is told which indexes were added, to backfill their keys

The boto3 clients are the caller's (made once, for one region); nothing here makes a client.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from imgpipe.ops import index_steps
from imgpipe.ops.change_sets import StackUpdates, describe_stack
from imgpipe.ops.deploy_artifacts import (
    DeployError,
    TemplateStore,
    artifacts_bucket_name,
    ensure_artifacts_bucket,
    upload_artifact,
)

if TYPE_CHECKING:
    from mypy_boto3_cloudformation.client import CloudFormationClient
    from mypy_boto3_cloudformation.type_defs import ParameterTypeDef, StackTypeDef
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_s3.client import S3Client
    from mypy_boto3_sts.client import STSClient

__all__ = [
    "DeployError",
    "artifacts_bucket_name",
    "deploy_stack",
    "ensure_artifacts_bucket",
    "upload_artifact",
]

log = logging.getLogger(__name__)

CODE_PARAMETERS = ("CodeBucket", "CodeKey")
# A stack in one of these can take no change set until someone deletes or repairs it.
DEAD_ENDS = frozenset({"ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "DELETE_FAILED"})
# Called with a table's name and the indexes an update added to it, once they are ACTIVE.
IndexesAdded = Callable[[str, tuple[str, ...]], None]


def deploy_stack(
    stack: str,
    *,
    region: str | None,
    params: dict[str, str],
    template: Path,
    zip_path: Path,
    cfn_client: CloudFormationClient,
    s3_client: S3Client,
    wait: bool = True,
    sts_client: STSClient | None = None,
    artifacts_bucket: str | None = None,
    dynamodb_client: DynamoDBClient | None = None,
    on_indexes_added: IndexesAdded | None = None,
    poll_s: float = 5.0,
    timeout_s: float = 3600.0,
) -> dict[str, str]:
    """Deploy `template` as `stack` with the code in `zip_path`; return the stack's outputs.

    The artifacts bucket is named after the account, which `sts_client` tells; or pass
    `artifacts_bucket`. With `wait=False` the change set is executed and the outputs known so
    far are returned (none for a new stack). A template with DynamoDB tables needs
    `dynamodb_client`: an update that would create or delete more than one index of a live table
    goes in steps (index_steps), waited for whatever `wait` says; once the stack is updated and
    its indexes ACTIVE, `on_indexes_added(table, indexes)` is called for each table that gained
    any (records written before an index existed lack its keys: the caller backfills them).
    """
    _refuse_code_parameters(params)
    region = region or s3_client.meta.region_name
    store = _artifacts_store(s3_client, sts_client, artifacts_bucket, region)
    code_key = upload_artifact(s3_client, store.bucket, zip_path, "lambda", account=store.account)
    template_url = store.template_url(template)

    existing = describe_stack(cfn_client, stack)
    updating = _updatable(stack, existing)
    values = {**params, "CodeBucket": store.bucket, "CodeKey": code_key}
    parameters: list[ParameterTypeDef] = [
        {"ParameterKey": k, "ParameterValue": v} for k, v in sorted(values.items())
    ]
    run = StackUpdates(cfn_client, dynamodb_client, stack, poll_s, timeout_s)
    tables: list[index_steps.LiveTable] = []
    if updating and existing is not None:
        parameters += _previous_values(cfn_client, existing, template_url, values)
        tables = _step_indexes(run, store, existing, template, parameters)

    outputs = run.change(
        template_url,
        parameters,
        "UPDATE" if updating else "CREATE",
        f"imgpipe deploy, code {code_key}",
        wait=wait,
    )
    _after_update(run, tables, on_indexes_added, wait=wait)
    return outputs


def _refuse_code_parameters(params: dict[str, str]) -> None:
    """The code's bucket and key are the uploaded zip's: a caller's value would be overwritten."""
    taken = sorted(set(params) & set(CODE_PARAMETERS))
    if taken:
        raise ValueError(f"{', '.join(taken)} are set by deploy itself")


def _artifacts_store(
    s3_client: S3Client, sts_client: STSClient | None, bucket: str | None, region: str
) -> TemplateStore:
    """The artifacts bucket, made if need be: the one given, or the account's (which STS tells;
    knowing the account, every call checks the bucket is that account's)."""
    account: str | None = None
    if bucket is None:
        if sts_client is None:
            raise ValueError("pass sts_client (the bucket is named after the account) or a bucket")
        account = sts_client.get_caller_identity()["Account"]
        bucket = artifacts_bucket_name(account, region)
    ensure_artifacts_bucket(s3_client, bucket, region=region, account=account)
    return TemplateStore(s3_client, bucket, region, account)


def _after_update(
    run: StackUpdates,
    tables: list[index_steps.LiveTable],
    on_indexes_added: IndexesAdded | None,
    *,
    wait: bool,
) -> None:
    """Waited for: the indexes, then the backfill callback. Not waited for: the caller is told
    that a backfill is due once the stack is done."""
    if wait:
        _indexes_done(run, tables, on_indexes_added)
    elif any(t.added for t in tables):
        log.info("indexes added: run `imgpipe backfill --index-keys` once the stack is done")


def _updatable(stack: str, existing: StackTypeDef | None) -> bool:
    """True to update the stack, False to create it; DeployError when it can take neither."""
    status = existing["StackStatus"] if existing else None
    if status in DEAD_ENDS:
        raise DeployError(f"stack {stack} is {status}: delete it, then deploy again")
    if status and status.endswith("_IN_PROGRESS") and status != "REVIEW_IN_PROGRESS":
        raise DeployError(f"stack {stack} is busy ({status}); try again when it is done")
    return existing is not None and status != "REVIEW_IN_PROGRESS"


def _step_indexes(
    run: StackUpdates,
    store: TemplateStore,
    existing: StackTypeDef,
    template: Path,
    parameters: list[ParameterTypeDef],
) -> list[index_steps.LiveTable]:
    """The stack's tables the template keeps; first the index steps they need, if any."""
    new_template = index_steps.load_template(template.read_text(encoding="utf-8"))
    if not index_steps.tables(new_template):
        return []
    tables = index_steps.live_tables(run.cfn_client, run.dynamodb(), run.stack, new_template)
    steps = index_steps.plan(tables)
    if steps:
        _run_index_steps(run, store, existing, new_template, steps, tables, parameters)
    return tables


def _indexes_done(
    run: StackUpdates, tables: list[index_steps.LiveTable], on_indexes_added: IndexesAdded | None
) -> None:
    """Wait for the indexes the last update changed; then report the tables that gained any."""
    changed = [t for t in tables if t.added or t.removed]
    for table in changed:
        index_steps.wait_until_active(
            run.dynamodb(), table.name, table.target, poll_s=run.poll_s, timeout_s=run.timeout_s
        )
    for table in changed:
        if table.added and on_indexes_added is not None:
            on_indexes_added(table.name, table.added)


def _previous_values(
    cfn_client: CloudFormationClient,
    existing: StackTypeDef,
    template_url: str,
    values: dict[str, str],
) -> list[ParameterTypeDef]:
    """UsePreviousValue for each parameter the template declares and `values` does not set."""
    declared = {
        p["ParameterKey"]
        for p in cfn_client.get_template_summary(TemplateURL=template_url).get("Parameters", [])
    }
    return [
        {"ParameterKey": p["ParameterKey"], "UsePreviousValue": True}
        for p in existing.get("Parameters", [])
        if p["ParameterKey"] in declared and p["ParameterKey"] not in values
    ]


def _run_index_steps(
    run: StackUpdates,
    store: TemplateStore,
    existing: StackTypeDef,
    new_template: index_steps.Template,
    steps: list[index_steps.Step],
    tables: list[index_steps.LiveTable],
    parameters: list[ParameterTypeDef],
) -> None:
    """The updates before the new template's own, each waited for, indexes ACTIVE: the stack's
    own template with its previous parameter values, then the new one with the new values."""
    old_template = index_steps.live_template(run.cfn_client, run.stack)
    previous: list[ParameterTypeDef] = [
        {"ParameterKey": p["ParameterKey"], "UsePreviousValue": True}
        for p in existing.get("Parameters", [])
    ]
    for number, step in enumerate(steps, 1):
        base, other = (new_template, old_template)
        if not step.on_new_template:
            base, other = other, base
        body = index_steps.step_template(base, other, step.indexes)
        log.info(
            "index step %d of %d for stack %s: %s",
            number,
            len(steps) + 1,
            run.stack,
            "; ".join(f"{t} {', '.join(names)}" for t, names in step.indexes.items()),
        )
        run.change(
            store.template_body_url(index_steps.dump_template(body)),
            parameters if step.on_new_template else previous,
            "UPDATE",
            f"imgpipe deploy, index step {number} of {len(steps) + 1}",
            wait=True,
        )
        for table in tables:
            index_steps.wait_until_active(
                run.dynamodb(),
                table.name,
                step.indexes[table.logical_id],
                poll_s=run.poll_s,
                timeout_s=run.timeout_s,
            )
